"""Word lists for plausible company names, industries and the customer-success team."""

from __future__ import annotations

import numpy as np

INDUSTRIES = (
    "Software", "Logistics", "Retail", "Healthcare", "Financial Services", "Manufacturing",
    "Education", "Hospitality", "Real Estate", "Media", "Energy", "Professional Services",
)  # fmt: skip
INDUSTRY_SHARES = (0.18, 0.10, 0.11, 0.09, 0.10, 0.09, 0.06, 0.05, 0.06, 0.05, 0.04, 0.07)

# Name stems by region: North America, EMEA, MENA, APAC (same order as timeline.REGIONS).
_STEMS = (
    (
        "Blue Ridge", "Northwind", "Summit", "Cedar", "Ironwood", "Lakeshore", "Redwood", "Granite",
        "Harbor", "Pioneer", "Silverline", "Brightpath", "Keystone", "Prairie", "Beacon", "Copperleaf",
        "Evergreen", "Westfield", "Bluebird", "Riverstone", "Maple", "Sterling", "Trailhead", "Canyon",
    ),
    (
        "Nordlicht", "Albion", "Helvetia", "Lumen", "Vireo", "Baltic", "Thames", "Alpenrose",
        "Kestrel", "Brightwater", "Rhein", "Solent", "Aurora", "Delta", "Vantage", "Mercia",
        "Orbis", "Fjord", "Castellan", "Linden", "Atlas", "Novum", "Meridian", "Kingfisher",
    ),
    (
        "Al Noor", "Rawabi", "Nakheel", "Sahara", "Al Waha", "Dar Al Khaleej", "Zamzam", "Majd",
        "Al Bayan", "Sidra", "Qamar", "Al Falak", "Yasmeen", "Marjan", "Al Manara", "Jazeera",
        "Tamkeen", "Rimal", "Al Safwa", "Burj", "Al Reef", "Layan", "Nujoom", "Al Masar",
    ),
    (
        "Lotus", "Sakura", "Jade", "Banyan", "Harbourline", "Monsoon", "Kowloon", "Coral",
        "Tasman", "Indigo", "Bamboo", "Pacifica", "Orchid", "Saffron", "Sunrise", "Kiwi",
        "Mekong", "Sentosa", "Himalaya", "Emerald", "Southern Cross", "Pearl", "Ganges", "Kyoto",
    ),
)  # fmt: skip

_TRADES = (
    "Analytics", "Logistics", "Health", "Foods", "Capital", "Labs", "Systems", "Retail", "Energy",
    "Learning", "Media", "Works", "Partners", "Digital", "Freight", "Clinics", "Properties", "Group",
    "Solutions", "Trading", "Technologies", "Consulting", "Hospitality", "Manufacturing",
)  # fmt: skip

_LEGAL = (
    ("Inc", "LLC", "Corp", "Co"),
    ("Ltd", "GmbH", "BV", "SAS", "AB", "plc"),
    ("LLC", "FZ-LLC", "Co", "Holding", "WLL"),
    ("Pte Ltd", "Pty Ltd", "Ltd", "KK", "Pvt Ltd"),
)  # fmt: skip

# Customer-success managers: first and last names per region they cover.
_CSM_FIRST = (
    ("emily", "jacob", "madison", "tyler", "olivia", "marcus", "hannah", "diego", "grace", "ryan"),
    ("sophie", "lukas", "chloe", "mateo", "anna", "oliver", "ines", "henrik", "clara", "tom"),
    ("layla", "omar", "noor", "khalid", "sara", "yousef", "reem", "tariq", "hala", "faisal"),
    ("mei", "arjun", "yuki", "wei", "priya", "kenji", "ananya", "jun", "siti", "liam"),
)  # fmt: skip
_CSM_LAST = (
    ("miller", "johnson", "carter", "nguyen", "brooks", "ramirez", "foster", "patel", "hughes", "reed"),
    ("schmidt", "dubois", "rossi", "jansen", "novak", "larsen", "moreau", "fischer", "silva", "walsh"),
    ("haddad", "al-mansour", "khalil", "nasser", "farouk", "al-hashimi", "saleh", "aziz", "darwish", "qasim"),
    ("tanaka", "sharma", "chen", "lim", "kumar", "wong", "sato", "rahman", "iyer", "park"),
)  # fmt: skip

EMAIL_DOMAIN = "demo-saas.example"


def company_names(rng: np.random.Generator, region: np.ndarray) -> list[str]:
    """A plausible company name per customer, in the style of its region."""
    stem_pick = rng.integers(0, len(_STEMS[0]), len(region))
    trade_pick = rng.integers(0, len(_TRADES), len(region))
    legal_pick = rng.random(len(region))
    with_trade = rng.random(len(region)) < 0.8
    names = []
    for r, s, t, legal, trade in zip(region, stem_pick, trade_pick, legal_pick, with_trade, strict=True):
        suffixes = _LEGAL[r]
        parts = [_STEMS[r][s], _TRADES[t] if trade else "", suffixes[int(legal * len(suffixes))]]
        names.append(" ".join(p for p in parts if p))
    return names


def csm_pool(rng: np.random.Generator, per_region: list[int]) -> list[list[str]]:
    """Unique CSM email addresses, one list per region, of the given sizes."""
    taken: set[str] = set()
    pool: list[list[str]] = []
    for region, size in enumerate(per_region):
        emails: list[str] = []
        while len(emails) < size:
            first = _CSM_FIRST[region][rng.integers(len(_CSM_FIRST[region]))]
            last = _CSM_LAST[region][rng.integers(len(_CSM_LAST[region]))]
            local = f"{first}.{last}"
            # Namesakes get a number, as mail admins do.
            suffix = 2
            while local in taken:
                local = f"{first}.{last}{suffix}"
                suffix += 1
            taken.add(local)
            emails.append(f"{local}@{EMAIL_DOMAIN}")
        pool.append(emails)
    return pool
