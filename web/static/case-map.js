// A case's place on the site's basemap (Leaflet, vendored; loaded as a classic script before the page's module:
// window.L): the configured tile source or the wall server's own offline tiles, the grid cells, the case (red) and
// its camera (blue). Shared by the case page (/cases/<id>) and the unit's phone page (/field). GET /api/map/basemap
// is open to unit users too (wall.access); for them it lists no cameras, so the camera is drawn from the case's
// own location (the camera's position) instead.

import { el } from "./dom.js";
import { getJSON } from "./api.js";

const html = (text) => el("span", "", text).innerHTML;  // Leaflet sets tooltips as HTML: text escaped
let basemap = null;  // the answer of /api/map/basemap, fetched once per page

/** Show case ``c`` on the map in ``container`` (made on first use, moved to the next case after) inside ``panel``
 *  (shown); ``legend`` gets the colours' key. Returns false when there is nothing to show (no position, no Leaflet,
 *  no basemap): ``panel`` is hidden and the geo: link stays the way there. */
export async function showCaseMap(panel, container, legend, c) {
  const L = window.L;
  const loc = c.location;
  if (L && loc && Array.isArray(loc.display) && !basemap) {
    try {
      basemap = await getJSON("/api/map/basemap");
    } catch {
      // no map: the panel stays hidden
    }
  }
  panel.hidden = !(L && loc && Array.isArray(loc.display) && basemap);
  if (panel.hidden) return false;
  const t = basemap.tiles;
  let view = container.caseMap;
  if (!view) {
    const map = L.map(container, { minZoom: t.min_zoom, maxZoom: t.max_zoom, zoomSnap: 0.25 });
    map.attributionControl.setPrefix(false);
    L.tileLayer(t.url, { subdomains: t.subdomains || "abc", minZoom: t.min_zoom, maxZoom: t.max_zoom,
      attribution: html(t.attribution || "") }).addTo(map);
    for (const cell of basemap.cells) {
      L.polygon(cell.ring.map(([lon, lat]) => [lat, lon]), { className: "cd-map-cell", weight: 1, fillOpacity: 0.06,
        interactive: false }).addTo(map);
    }
    view = container.caseMap = { map, marks: L.layerGroup().addTo(map) };
  }
  if (view.caseId === c.id) return true;  // the same case again (a refresh): the user's pan and zoom kept
  view.caseId = c.id;
  view.marks.clearLayers();
  const here = [loc.display[1], loc.display[0]];
  const listed = (basemap.cameras || []).find((x) => x.id === c.camera_id);
  const camName = listed ? listed.name || listed.id : loc.camera_name || c.camera_id || "";
  const camAt = listed ? [listed.lonlat[1], listed.lonlat[0]] : (loc.camera_id ? here : null);
  if (camAt) {
    L.circleMarker(camAt, { radius: 11, weight: 3, className: "cd-map-camera" })
      .bindTooltip(html(`摄像头 ${camName}`)).addTo(view.marks);
  }
  L.circleMarker(here, { radius: 6, weight: 2, className: "cd-map-case" })
    .bindTooltip(html(`${c.case_no} ${loc.address || ""}`)).addTo(view.marks);
  view.map.invalidateSize();  // the panel may just have been shown
  view.map.setView(here, Math.min(t.max_zoom, Math.max(t.min_zoom, 17)));
  legend.replaceChildren(el("span", "dot case"), "案件位置", el("span", "dot camera"),
    camAt ? `摄像头 ${camName}` : "摄像头");
  return true;
}
