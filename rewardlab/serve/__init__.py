"""``rewardlab serve``: any reward that ``rewards.load`` accepts, behind FastAPI and uvicorn.

Routes (see ``app.py``): ``/v1/score``, ``/v1/score_transitions``, ``/v1/explain``, ``/get_reward`` (OpenRLHF),
``/pooling`` (POLAR's vLLM client), ``/v1/info``, ``/health``, ``/metrics`` (Prometheus).
"""

from rewardlab.serve.app import API_KEY_ENV, ServeSettings, create_app
from rewardlab.serve.server import serve

__all__ = ["API_KEY_ENV", "ServeSettings", "create_app", "serve"]
