"""A/B arms and the exposure/click event log (``Experiment``, ``EventLog``, ``ab_report``), re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/experiments.py``), which backends install without TensorFlow.
``serving.experiments`` *is* that module (same module object, as ``serving.client`` is
``commerce_recsys_client.client``), so the full stack's
imports (``from serving.experiments import EventLog``) keep working.
"""
import sys

from commerce_recsys_client import experiments as _experiments

sys.modules[__name__] = _experiments
