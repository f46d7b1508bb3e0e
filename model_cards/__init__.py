"""Jinja templates of the Hub model cards (installed as ``dcicnn.model_cards``)."""
