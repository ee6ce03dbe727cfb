"""Who gets what: list imports, the subscription lifecycle, the roster, confirmation mails."""
