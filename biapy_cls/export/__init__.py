"""BioImage Model Zoo packages: export (bmz.py) and import (bmz_import.py); settings.py checks MODEL.BMZ.*."""
