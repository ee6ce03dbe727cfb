(function () {
  "use strict";
  var zone = document.getElementById("timezone");
  if (zone && zone.getAttribute("data-from-browser") === "yes") {
    try {
      var here = Intl.DateTimeFormat().resolvedOptions().timeZone;
      for (var i = 0; i < zone.options.length; i += 1) {
        if (zone.options[i].value === here) {
          zone.value = here;
          break;
        }
      }
    } catch (ignored) {
      /* an old browser: the server's default stays chosen */
    }
  }
  var weekday = document.getElementById("weekday");
  var weekly = document.querySelector('input[name="frequency"][value="weekly"]');
  if (weekday && weekly) {
    var choices = document.querySelectorAll('input[name="frequency"]');
    var follow = function () {
      weekday.disabled = !weekly.checked;
    };
    for (var j = 0; j < choices.length; j += 1) {
      choices[j].addEventListener("change", follow);
    }
    follow();
  }
})();
