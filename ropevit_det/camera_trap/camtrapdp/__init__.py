"""Camtrap DP 1.0.2 (the TDWG camera-trap data package GBIF publishes): export, validation, import.

Modules: ``deployments`` (the deployments file a user writes, checked), ``events`` (media grouped into events,
as the sequence smoothing groups them), ``metadata`` (``datapackage.json``), ``export`` (results -> package),
``validate`` (frictionless against the shipped 1.0.2 profile, offline), ``import_coco`` (a package with boxes ->
COCO Camera Traps for training) and ``schema`` (the shipped profile and table schemas, in ``profile/``).
"""
