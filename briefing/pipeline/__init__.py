"""Pure stages of an edition, no database and no network: select, summarise, relate, render, compose."""
