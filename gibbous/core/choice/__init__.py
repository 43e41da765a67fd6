"""Catalog and choice: instance types, their labels, prices, the pod classes and which offers satisfy a pod."""
