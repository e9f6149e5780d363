"""The demo company: a realistic B2B SaaS customer base whose churn has hidden causes with lead time."""

from churn.demo.generator import DemoSummary, generate_demo_company

__all__ = ["DemoSummary", "generate_demo_company"]
