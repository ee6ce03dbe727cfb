(function () {
  "use strict";
  // Browsers may name a zone by its old alias (ICU's names); the list holds zone.tab's.
  var renamed = {
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Rangoon": "Asia/Yangon",
    "Europe/Kiev": "Europe/Kyiv",
    "America/Godthab": "America/Nuuk",
    "Atlantic/Faeroe": "Atlantic/Faroe",
    "Pacific/Truk": "Pacific/Chuuk",
    "Pacific/Ponape": "Pacific/Pohnpei",
    "Pacific/Enderbury": "Pacific/Kanton",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
    "America/Indianapolis": "America/Indiana/Indianapolis",
    "America/Louisville": "America/Kentucky/Louisville"
  };
  var zone = document.getElementById("timezone");
  if (zone && zone.getAttribute("data-from-browser") === "yes") {
    try {
      var here = Intl.DateTimeFormat().resolvedOptions().timeZone;
      here = renamed[here] || here;
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
