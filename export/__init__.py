"""Serving-model assembly: trained models → SavedModels with the contract's signatures.

``retrieval`` (the retrieval serving module and the one exclusion mask), ``twins``
(ScaNN + brute-force twin export, ScaNN tuning), ``dual_head`` (the dual-head
student's and teacher's serving modules), ``evaluate`` (full-ranking evaluation
of exported SavedModels through their own signatures).
"""
