// The map of Seoul as SVG: the city box, the Han river, landmarks, and markers for taxis,
// pickup and destination. Clicking it reports the point clicked.

import type { Point } from "./api";
import { HAN_RIVER, LANDMARKS, MAP_HEIGHT, MAP_WIDTH, project, SEOUL, unproject } from "./geo";
import { s } from "./dom";

export interface Marker {
  point: { lat: number; lng: number };
  kind: "pickup" | "destination" | "taxi-Available" | "taxi-Busy" | "taxi" | "offer";
  label?: string;
}

export interface SeoulMap {
  el: SVGElement;
  setMarkers(ms: Marker[]): void;
}

export function seoulMap(onPick?: (p: Point) => void, title = "Map of Seoul"): SeoulMap {
  const svg = s("svg", {
    viewBox: `0 0 ${MAP_WIDTH} ${MAP_HEIGHT}`,
    class: onPick ? "map pickable" : "map",
    role: "img",
    "aria-label": title,
    "data-testid": "map",
    // The box drawn, west,south,east,north: lets a browser test click a coordinate.
    "data-bbox": `${SEOUL.west},${SEOUL.south},${SEOUL.east},${SEOUL.north}`,
  });
  svg.append(s("rect", { x: 0, y: 0, width: MAP_WIDTH, height: MAP_HEIGHT, class: "land" }));
  const river = HAN_RIVER.map(([lat, lng]) => project({ lat, lng }))
    .map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`)
    .join(" ");
  svg.append(s("path", { d: river, class: "river" }));
  for (const l of LANDMARKS) {
    const p = project(l);
    svg.append(s("circle", { cx: p.x, cy: p.y, r: 3, class: "landmark" }));
    svg.append(s("text", { x: p.x + 5, y: p.y - 4, class: "landmark-label" }, l.name ?? ""));
  }
  const layer = s("g", { class: "markers" });
  svg.append(layer);
  if (onPick) {
    svg.addEventListener("click", (ev) => {
      const e = ev as MouseEvent;
      const box = svg.getBoundingClientRect();
      const x = ((e.clientX - box.left) / box.width) * MAP_WIDTH;
      const y = ((e.clientY - box.top) / box.height) * MAP_HEIGHT;
      onPick(unproject({ x, y }));
    });
  }
  return {
    el: svg,
    setMarkers(ms) {
      layer.replaceChildren(
        ...ms.map((m) => {
          const p = project(m.point);
          const taxi = m.kind.startsWith("taxi");
          const g = s("g", { class: `marker ${m.kind}`, "data-kind": m.kind });
          g.append(s("circle", { cx: p.x, cy: p.y, r: taxi ? 5 : 8 }));
          if (m.label) g.append(s("text", { x: p.x + 9, y: p.y + 4 }, m.label));
          return g;
        }),
      );
    },
  };
}
