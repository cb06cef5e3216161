// The situation map on a real basemap (Leaflet, vendored in /static/vendor/leaflet): the configured tile source
// (XYZ or WMTS, e.g. a city's 天地图 on its internal network) or, by default, the wall server's own offline tiles
// drawn from the grid file; grid cells, camera markers (click: onCamera), live alarm markers. The server hands the
// points already in the tiles' coordinate system (GCJ-02 sources get shifted points), so nothing is converted here.
// Leaflet is loaded as a classic script before this module (window.L).

import { getJSON } from "./api.js";

const L = window.L;

export class Basemap {
  /** ``container``: the map's element; ``onCamera(id)``: a camera marker clicked. */
  constructor(container, { onCamera }) {
    this.container = container;
    this.onCamera = onCamera;
    this.markers = new Map();   // camera id → circle marker
    this.hot = new Map();       // camera id → alarm marker
    this.map = null;
    this.data = null;
  }

  async load() {
    const data = await getJSON("/api/map/basemap");
    this.data = data;
    const t = data.tiles;
    const map = L.map(this.container, { zoomControl: true, attributionControl: true, minZoom: t.min_zoom,
      maxZoom: t.max_zoom, zoomSnap: 0.25 });
    this.map = map;
    map.attributionControl.setPrefix('<a href="https://leafletjs.com" title="Leaflet">Leaflet</a>');
    this.tiles = L.tileLayer(t.url, { attribution: escapeText(t.attribution), subdomains: t.subdomains || "abc",
      minZoom: t.min_zoom, maxZoom: t.max_zoom, crossOrigin: false }).addTo(map);
    const cells = L.featureGroup().addTo(map);
    for (const c of data.cells) {
      L.polygon(c.ring.map(([lon, lat]) => [lat, lon]), { className: "bm-cell", weight: 1.5, fillOpacity: 0.08 })
        .bindTooltip(escapeText(`${c.name} ${c.grid_code || ""}`), { sticky: true }).addTo(cells);
    }
    const points = data.cameras.map((c) => [c.lonlat[1], c.lonlat[0]]);
    const bounds = cells.getLayers().length ? cells.getBounds() : L.latLngBounds(points.length ? points : [[30.27, 120.16]]);
    for (const p of points) bounds.extend(p);
    map.fitBounds(bounds.pad(0.05));
    for (const cam of data.cameras) this.addCamera(cam);
    return this;
  }

  addCamera(cam) {
    if (this.markers.has(cam.id)) return;
    const m = L.circleMarker([cam.lonlat[1], cam.lonlat[0]], { radius: 10, className: "bm-cam unknown", weight: 3,
      fillOpacity: 0.9 }).addTo(this.map);
    m.bindTooltip(escapeText(`${cam.name}：点击查看实时画面`), { direction: "top" });  // Leaflet sets HTML
    m.on("click", () => this.onCamera(cam.id));
    m.getElement().setAttribute("data-camera", cam.id);
    this.markers.set(cam.id, m);
  }

  /** A camera's state (online/offline/…) colours its marker. */
  setState(id, state) {
    const m = this.markers.get(id);
    if (!m) return;
    m.getElement().setAttribute("class", `leaflet-interactive bm-cam ${state || "unknown"}`);
  }

  /** The cameras with a live (raised, not cleared) alarm get a pulsing red ring. */
  setHot(cameraIds) {
    for (const [id, ring] of this.hot) {
      if (!cameraIds.has(id)) { ring.remove(); this.hot.delete(id); }
    }
    for (const id of cameraIds) {
      const m = this.markers.get(id);
      if (!m || this.hot.has(id)) continue;
      const ring = L.circleMarker(m.getLatLng(), { radius: 22, className: "bm-hot", weight: 5, fill: false,
        interactive: false }).addTo(this.map);
      ring.getElement().setAttribute("data-camera", id);
      this.hot.set(id, ring);
    }
  }
}

function escapeText(text) {
  const span = document.createElement("span");
  span.textContent = text || "";
  return span.innerHTML;
}
