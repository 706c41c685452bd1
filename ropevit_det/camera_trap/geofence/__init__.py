"""Species that can live where the camera stands: SpeciesNet's geofence rules on our classifier's classes.

``location`` (coordinates -> ISO 3166-1 alpha-3 country and region, offline, with a border caveat),
``speciesnet_rules`` (SpeciesNet's geofence JSON and its decisions), ``inat_mapping`` (iNat21 classes as
SpeciesNet taxonomy strings) and ``class_geofence`` (the rules applied to a classifier's classes at one place).
"""
