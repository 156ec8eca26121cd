"""rewardlab: reward learners behind one reward interface (``rewardlab.rewards``), tracked in MLflow."""

__version__ = "0.1.0"
