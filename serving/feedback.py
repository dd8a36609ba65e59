"""Feedback as an online update of the user's query vector (``FeedbackRule``), re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/feedback.py``), which backends install without TensorFlow.
``serving.feedback`` *is* that module (same module object, as ``serving.client`` is
``commerce_recsys_client.client``), so the full stack's
imports (``from serving.feedback import FeedbackRule``) keep working.
"""
import sys

from commerce_recsys_client import feedback as _feedback

sys.modules[__name__] = _feedback
