"""resume-collector: a long-running asyncio service that grows a resume-writing dataset."""

__version__ = "0.1.0"
