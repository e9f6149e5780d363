"""Cancellation reason vocabulary: varied English and Arabic phrasings per reason code, with fillers."""

from __future__ import annotations

REASON_CODES = (
    "price", "product_fit", "support", "adoption", "competitor", "business_closed", "payment_failed", "other",
)  # fmt: skip

REASONS: dict[str, dict[str, tuple[str, ...]]] = {
    "price": {
        "en": (
            "Too expensive for our budget this year.",
            "The renewal quote was much higher than we can justify.",
            "We only use a fraction of the seats we pay for.",
            "Found a cheaper plan elsewhere that covers what we need.",
            "Cost cutting across the company, all non-essential tools are going.",
            "Price per seat is too high for a team our size.",
            "Finance did not approve the renewal.",
        ),
        "ar": (
            "السعر أعلى من ميزانيتنا هذا العام.",
            "عرض التجديد أعلى بكثير مما يمكننا تبريره.",
            "نستخدم جزءاً صغيراً فقط من المقاعد التي ندفع مقابلها.",
            "وجدنا خطة أرخص تغطي احتياجاتنا.",
            "خفض التكاليف في الشركة وإلغاء الأدوات غير الضرورية.",
            "سعر المستخدم الواحد مرتفع لفريق بحجمنا.",
            "الإدارة المالية لم توافق على التجديد.",
        ),
    },
    "product_fit": {
        "en": (
            "Missing features we need, especially custom reporting.",
            "The product doesn't fit our workflow.",
            "We need an on-premise option.",
            "No support for our approval process.",
            "It was built for bigger teams than ours.",
            "Lacks the integrations our operations depend on.",
        ),
        "ar": (
            "تنقصه ميزات نحتاجها، خاصة التقارير المخصصة.",
            "المنتج لا يناسب طريقة عملنا.",
            "نحتاج خياراً يعمل على خوادمنا الخاصة.",
            "لا يدعم دورة الموافقات الخاصة بنا.",
            "مصمم لفرق أكبر من فريقنا.",
            "تنقصه التكاملات التي تعتمد عليها عملياتنا.",
            "دعم اللغة العربية في التقارير غير كافٍ.",
        ),
    },
    "support": {
        "en": (
            "Support was too slow when we needed help.",
            "Issues took weeks to get resolved.",
            "We never got a real fix for our main problem.",
            "Too many escalations for basic problems.",
            "Poor experience with the support team.",
            "Our tickets kept getting closed without a solution.",
        ),
        "ar": (
            "الدعم الفني كان بطيئاً جداً عندما احتجنا المساعدة.",
            "المشاكل كانت تستغرق أسابيع حتى تُحل.",
            "لم نحصل على حل حقيقي لمشكلتنا الرئيسية.",
            "تصعيدات كثيرة لمشاكل بسيطة.",
            "تجربة سيئة مع فريق الدعم.",
            "كانت تذاكرنا تُغلق بدون حل.",
        ),
    },
    "adoption": {
        "en": (
            "The team never really adopted it.",
            "Not enough usage to justify keeping it.",
            "We went back to spreadsheets.",
            "The person who championed it left the company.",
            "We didn't have time to roll it out properly.",
            "Only a couple of people were using it.",
        ),
        "ar": (
            "الفريق لم يتبنَّ النظام فعلياً.",
            "الاستخدام قليل ولا يبرر الاستمرار.",
            "رجعنا إلى جداول البيانات.",
            "الشخص الذي كان يتابع النظام ترك الشركة.",
            "لم يكن لدينا وقت لتطبيقه بشكل صحيح.",
            "شخصان فقط كانا يستخدمانه.",
        ),
    },
    "competitor": {
        "en": (
            "Moving to a competitor.",
            "Switching to the platform our parent company uses.",
            "Another vendor offered a better deal.",
            "We chose a tool with a native CRM integration.",
            "Consolidating onto a suite we already pay for.",
            "Found an alternative that fits us better.",
        ),
        "ar": (
            "سننتقل إلى منافس.",
            "سننتقل إلى المنصة التي تستخدمها الشركة الأم.",
            "مزود آخر قدم لنا عرضاً أفضل.",
            "اخترنا أداة لديها تكامل مباشر مع نظام إدارة العملاء.",
            "سنعتمد على حزمة برامج ندفع مقابلها أصلاً.",
            "وجدنا بديلاً يناسبنا أكثر.",
        ),
    },
    "business_closed": {
        "en": (
            "We are closing the business.",
            "The company was acquired and the team is being merged.",
            "Shutting down operations at the end of the month.",
            "The project this was for has been cancelled.",
            "Our company is winding down.",
            "The branch that used it has closed.",
        ),
        "ar": (
            "سنغلق الشركة.",
            "تم الاستحواذ على الشركة وسيتم دمج الفريق.",
            "سنوقف العمليات في نهاية الشهر.",
            "تم إلغاء المشروع الذي كنا نستخدمه من أجله.",
            "الشركة في مرحلة التصفية.",
            "الفرع الذي كان يستخدمه أُغلق.",
        ),
    },
    "payment_failed": {
        "en": (
            "Card declined several times, subscription cancelled automatically.",
            "Payment failed and the card was not updated in time.",
            "Automatic cancellation after failed payment retries.",
            "Credit card expired.",
            "Unpaid invoice after three reminders.",
            "Billing could not charge the card on file.",
        ),
        "ar": (
            "تم رفض البطاقة عدة مرات وأُلغي الاشتراك تلقائياً.",
            "فشل الدفع ولم يتم تحديث البيانات في الوقت المناسب.",
            "إلغاء تلقائي بعد فشل محاولات الدفع.",
            "انتهت صلاحية البطاقة الائتمانية.",
            "فاتورة غير مدفوعة بعد ثلاثة تذكيرات.",
            "لم نتمكن من خصم المبلغ من البطاقة المسجلة.",
        ),
    },
    "other": {
        "en": (
            "Internal reasons.",
            "Reorganisation on our side.",
            "Not needed anymore.",
            "Decision from management.",
            "We'll revisit next year.",
            "Changing priorities.",
        ),
        "ar": (
            "أسباب داخلية.",
            "إعادة هيكلة لدينا.",
            "لم نعد بحاجة إليه.",
            "قرار من الإدارة.",
            "سنعيد النظر في العام القادم.",
            "تغيرت أولوياتنا.",
        ),
    },
}

# Fillers around the core sentence; an empty string means none.
OPENERS: dict[str, tuple[str, ...]] = {
    "en": ("", "", "", "Honestly, ", "To be frank, ", "Unfortunately ", "After careful consideration: ",
           "As discussed with our account manager: "),
    "ar": ("", "", "", "بصراحة، ", "للأسف ", "بعد التفكير، ", "كما ناقشنا مع مدير الحساب، "),
}  # fmt: skip
CLOSERS: dict[str, tuple[str, ...]] = {
    "en": ("", "", "", " Thanks for everything.", " Thank you for the support over the years.",
           " We may come back later.", " Please confirm the cancellation.", " No hard feelings."),
    "ar": ("", "", "", " شكراً لكم على كل شيء.", " شكراً على تعاونكم.", " ربما نعود لاحقاً.",
           " يرجى تأكيد الإلغاء.", " مع التحية."),
}  # fmt: skip
