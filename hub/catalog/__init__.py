"""The item catalogue (事项目录): items with their ten standard elements, bundles, departments, desks."""

from hub.catalog.loader import load_catalog
from hub.catalog.models import Bundle, Catalog, Department, Desk, FormField, Item, Material

__all__ = ["Bundle", "Catalog", "Department", "Desk", "FormField", "Item", "Material", "load_catalog"]
