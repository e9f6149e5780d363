"""The built-in vocabulary prior: words and stems customers use for each default reason, English and Arabic.

Before a company has labelled a single cancellation, these words already classify a text: each reason
scores the words of its vocabulary found in the text, and the confidence is that reason's share of all
the evidence. The lists hold general words (a thesaurus of leaving, not any company's sentences);
a company that adds its own reason codes simply has no prior for them until it labels some.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from training.reasons.normalise import stems

VOCABULARY_CLASSIFIER = "vocabulary"

# Each entry is a word or a short phrase; entries are normalised and stemmed when loaded, so
# spelling variants (hamza forms, taa marbuta, diacritics, ال) need not be listed.
WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "price": {
        "en": (
            "expensive", "price", "pricing", "cost", "costs", "costly", "budget", "cheaper", "cheap",
            "afford", "affordable", "overpriced", "pay", "paying", "money", "fee", "fees", "invoice",
            "discount", "spend", "spending", "savings", "value for money", "too much", "per seat",
            "renewal quote", "increase", "finance", "procurement", "pricey", "licence", "license",
        ),
        "ar": (
            "غالي", "غاليه", "سعر", "اسعار", "تكلفه", "تكاليف", "ميزانيه", "ارخص", "رخيص", "مكلف",
            "ندفع", "دفع", "مبلغ", "رسوم", "فاتوره", "خصم", "توفير", "مصاريف", "مال", "مالي", "الماليه",
            "قيمه", "زياده", "رفع", "باهظ", "مرتفع", "تقليص النفقات", "نفقات", "اشتراك", "التجديد",
        ),
    },
    "product_fit": {
        "en": (
            "feature", "features", "missing", "lack", "lacks", "lacking", "functionality", "function",
            "integration", "integrations", "integrate", "workflow", "fit", "suit", "requirement",
            "requirements", "capability", "customization", "customisation", "api", "export",
            "reporting", "report", "doesn't support", "does not support", "limited", "limitations",
            "roadmap", "module", "option", "on-premise", "language",
        ),
        "ar": (
            "ميزه", "ميزات", "خاصيه", "خصائص", "وظيفه", "وظائف", "ينقص", "تنقص", "تنقصه", "نقص",
            "غير متوفر", "لا يدعم", "تكامل", "تكاملات", "ربط", "يناسب", "يلائم", "متطلبات", "احتياجات",
            "تخصيص", "تقارير", "تقرير", "محدود", "قيود", "خيار", "خيارات", "اللغه", "طريقه عمل",
        ),
    },
    "support": {
        "en": (
            "support", "service", "help", "helpdesk", "ticket", "tickets", "slow", "response",
            "respond", "responded", "resolve", "resolved", "unresolved", "fix", "fixed", "bug", "bugs",
            "escalation", "escalations", "rude", "unhelpful", "waiting", "wait", "ignored", "complaint",
            "agent", "customer service", "outage", "downtime", "broken", "errors", "poor experience",
        ),
        "ar": (
            "دعم", "الدعم الفني", "خدمه", "خدمه العملاء", "مساعده", "تذكره", "تذاكر", "بطيء", "بطء",
            "رد", "الرد", "استجابه", "حل", "مشكله", "مشاكل", "اعطال", "عطل", "خلل", "تصعيد", "انتظار",
            "ننتظر", "تجاهل", "شكوى", "شكاوى", "سيئه", "سيء", "موظف", "توقف", "اخطاء",
        ),
    },
    "adoption": {
        "en": (
            "usage", "use", "using", "used", "adopt", "adopted", "adoption", "onboarding", "training",
            "learn", "complicated", "complex", "difficult", "hard to use", "value", "benefit",
            "engagement", "logged", "login", "rollout", "roll out", "spreadsheet", "spreadsheets",
            "excel", "champion", "nobody", "few people", "time", "busy", "priority", "need it",
        ),
        "ar": (
            "استخدام", "نستخدم", "يستخدم", "استعمال", "تبني", "تدريب", "تعلم", "معقد", "صعب",
            "صعوبه", "فائده", "قيمه", "تفاعل", "دخول", "تطبيق", "جداول", "اكسل", "احد", "قليل",
            "وقت", "انشغال", "اولويه", "لا نحتاج",
        ),
    },
    "competitor": {
        "en": (
            "competitor", "competitors", "alternative", "switch", "switching", "switched", "moving to",
            "moved to", "another vendor", "another provider", "another tool", "other tool", "rival",
            "replaced", "replacing", "replacement", "chose", "chosen", "selected", "better offer",
            "consolidate", "consolidating", "in-house", "build our own", "migrate", "migrating",
        ),
        "ar": (
            "منافس", "منافسين", "بديل", "بدائل", "انتقال", "ننتقل", "انتقلنا", "مزود اخر", "مزود",
            "شركه اخري", "نظام اخر", "اداه اخري", "استبدال", "اخترنا", "اختيار", "عرض افضل", "توحيد",
            "داخلي", "نبني", "تحويل",
        ),
    },
    "business_closed": {
        "en": (
            "closed", "closing", "closure", "shut", "shutting", "shutdown", "bankrupt", "bankruptcy",
            "insolvent", "liquidation", "acquired", "acquisition", "merger", "merged", "bought",
            "out of business", "wind down", "winding down", "ceased", "ceasing", "operations",
            "restructuring", "dissolved", "layoffs", "laid off", "stopped trading", "funding",
        ),
        "ar": (
            "اغلاق", "اغلقت", "اغلقنا", "اقفال", "افلاس", "تصفيه", "استحواذ", "اندماج", "دمج",
            "بيع الشركه", "توقف النشاط", "ايقاف النشاط", "انهاء النشاط", "اعاده هيكله", "تسريح",
            "اغلاق الشركه", "اغلاق الفرع", "تمويل", "انتهي", "لم تعد",
        ),
    },
    "payment_failed": {
        "en": (
            "card", "credit card", "declined", "payment failed", "failed payment", "expired",
            "billing", "charge", "charged", "bank", "transaction", "unpaid", "overdue", "dunning",
            "payment method", "insufficient", "retry", "bounced",
        ),
        "ar": (
            "بطاقه", "البطاقه الائتمانيه", "رفض", "رفضت", "مرفوض", "فشل الدفع", "فشل", "منتهيه",
            "انتهت صلاحيه", "بنك", "البنك", "معامله", "عمليه الدفع", "متاخر", "مستحق", "وسيله الدفع",
            "رصيد", "غير كاف",
        ),
    },
    "other": {
        "en": ("personal", "other reasons", "no reason", "prefer not to say", "n/a", "misc", "various"),
        "ar": ("شخصيه", "اسباب اخري", "لا يوجد سبب", "بدون سبب", "اسباب خاصه", "ظروف"),
    },
}  # fmt: skip

# Evidence added to every reason before sharing out, so one matching word gives a moderate
# confidence and two words for the same reason a clear one.
SMOOTHING = 0.1
_PREFIX_MATCH_MIN = 4


@dataclass(frozen=True)
class Vocabulary:
    """The stemmed vocabulary of each reason code, ready to score texts."""

    codes: tuple[str, ...]
    phrases: Mapping[str, tuple[tuple[str, ...], ...]]
    # First stem of each phrase → (code position, phrase), so a text is scored in one pass over its words.
    _index: dict[str, list[tuple[int, tuple[str, ...]]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for position, code in enumerate(self.codes):
            for phrase in self.phrases.get(code, ()):
                if phrase:
                    self._index.setdefault(phrase[0], []).append((position, phrase))

    def hits(self, text: str) -> np.ndarray:
        """How many vocabulary words or phrases of each code the text contains (in ``codes`` order)."""
        words = stems(text)
        found: set[tuple[int, tuple[str, ...]]] = set()
        for start, word in enumerate(words):
            for key in _keys(word):
                for position, phrase in self._index.get(key, ()):
                    rest = words[start + 1 : start + len(phrase)]
                    if len(rest) == len(phrase) - 1 and all(
                        _same(p, w) for p, w in zip(phrase[1:], rest, strict=True)
                    ):
                        found.add((position, phrase))
        counts = np.zeros(len(self.codes))
        for position, _ in found:
            counts[position] += 1
        return counts

    def probabilities(self, text: str) -> np.ndarray:
        """Each code's share of the evidence in the text (uniform when nothing matches)."""
        hits = self.hits(text) + SMOOTHING
        return hits / hits.sum()


def vocabulary_for(
    codes: Sequence[str], words: Mapping[str, Mapping[str, Sequence[str]]] = WORDS
) -> Vocabulary:
    """The vocabulary for a taxonomy's codes; codes with no built-in words have an empty one."""
    phrases = {
        code: tuple(
            dict.fromkeys(
                tuple(stems(entry)) for entries in words.get(code, {}).values() for entry in entries
            )
        )
        for code in codes
    }
    return Vocabulary(tuple(codes), phrases)


def _keys(word: str) -> list[str]:
    # The vocabulary stems that can match this word: itself, or any prefix long enough to match by prefix.
    return [word, *(word[:k] for k in range(_PREFIX_MATCH_MIN, len(word)))]


def _same(vocabulary_stem: str, word: str) -> bool:
    # A long stem also matches the longer words built on it (cancel → cancellation, ميزان → ميزانيات).
    if len(vocabulary_stem) >= _PREFIX_MATCH_MIN:
        return word.startswith(vocabulary_stem)
    return word == vocabulary_stem
