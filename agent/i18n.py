"""The user's language: every string the end user sees goes through gettext here.

The agent's domain is ``deskside``; its catalogues live in ``locale/<lang>/
LC_MESSAGES/deskside.mo`` beside this module, chosen from the usual variables
(``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``). Without a catalogue for the
user's language the English text is shown as written. The chat window's strings are
marked; the consent prompt, the indicator and the Polish catalogue come with the
user's-language work (Babel extracts every ``_("...")``).
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path
from typing import Final

__all__ = ["DOMAIN", "LOCALE_DIR", "gettext_for", "ngettext_for"]

DOMAIN: Final = "deskside"
LOCALE_DIR: Final = Path(__file__).with_name("locale")


@functools.cache
def _translation() -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, fallback=True)


def gettext_for(message: str) -> str:
    """``message`` in the user's language (English if there is no catalogue for it)."""
    return _translation().gettext(message)


def ngettext_for(singular: str, plural: str, count: int) -> str:
    """The singular or plural of a message for ``count``, in the user's language."""
    return _translation().ngettext(singular, plural, count)
