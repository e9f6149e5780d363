"""(being written)"""

from fastapi import APIRouter, FastAPI

router = APIRouter()


def install_metrics(app: FastAPI) -> None:
    """Count requests and their latency."""
