"""The situation map: coordinate systems (WGS-84 / GCJ-02 / CGCS2000), the offline basemap tiles drawn from the
site's ``grid.geojson``, and the wall server's map routes (``maps.api``)."""
