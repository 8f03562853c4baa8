// Seoul as a map drawn from coordinates: an equirectangular projection of a fixed box over
// the city (no tiles), the Han river and a few landmarks to find one's way, distances.

import type { Point } from "./api";

/** The box the map shows (degrees). */
export const SEOUL = { west: 126.80, east: 127.18, south: 37.43, north: 37.70 } as const;

/** The map's drawing size in SVG units (width follows the latitude's cosine). */
export const MAP_HEIGHT = 600;
export const MAP_WIDTH = Math.round(
  (MAP_HEIGHT * (SEOUL.east - SEOUL.west) * Math.cos(((SEOUL.south + SEOUL.north) / 2) * (Math.PI / 180))) /
    (SEOUL.north - SEOUL.south),
);

export interface Xy {
  x: number;
  y: number;
}

/** Where a point is drawn. */
export function project(p: { lat: number; lng: number }): Xy {
  return {
    x: ((p.lng - SEOUL.west) / (SEOUL.east - SEOUL.west)) * MAP_WIDTH,
    y: ((SEOUL.north - p.lat) / (SEOUL.north - SEOUL.south)) * MAP_HEIGHT,
  };
}

/** The point drawn at (x, y), rounded to 5 decimals (about a metre). */
export function unproject(xy: Xy): Point {
  const round = (n: number) => Math.round(n * 1e5) / 1e5;
  return {
    lat: round(SEOUL.north - (xy.y / MAP_HEIGHT) * (SEOUL.north - SEOUL.south)),
    lng: round(SEOUL.west + (xy.x / MAP_WIDTH) * (SEOUL.east - SEOUL.west)),
  };
}

/** Whether a point lies inside the map. */
export function onMap(p: { lat: number; lng: number }): boolean {
  return p.lat >= SEOUL.south && p.lat <= SEOUL.north && p.lng >= SEOUL.west && p.lng <= SEOUL.east;
}

/** Great-circle distance in metres. */
export function distanceMeters(a: { lat: number; lng: number }, b: { lat: number; lng: number }): number {
  const r = 6_371_000;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLng = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * r * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** "850 m" below a kilometre, "3.2 km" above. */
export function formatDistance(m: number): string {
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

/** Landmarks a rider can pick by name. */
export const LANDMARKS: Point[] = [
  { name: "Seoul Station", lat: 37.5547, lng: 126.9707 },
  { name: "City Hall", lat: 37.5665, lng: 126.978 },
  { name: "Gwanghwamun", lat: 37.5759, lng: 126.9769 },
  { name: "Myeongdong", lat: 37.5636, lng: 126.9827 },
  { name: "Hongik Univ.", lat: 37.5572, lng: 126.9245 },
  { name: "Yeouido", lat: 37.5219, lng: 126.9245 },
  { name: "Itaewon", lat: 37.5345, lng: 126.9946 },
  { name: "Gangnam Station", lat: 37.4979, lng: 127.0276 },
  { name: "COEX", lat: 37.5116, lng: 127.0594 },
  { name: "Jamsil", lat: 37.5133, lng: 127.1001 },
  { name: "Gimpo Airport", lat: 37.5587, lng: 126.805 },
  { name: "Konkuk Univ.", lat: 37.5404, lng: 127.0692 },
];

/** The Han river's course through the box, west to east (rough, for orientation). */
export const HAN_RIVER: [number, number][] = [
  [37.588, 126.8],
  [37.575, 126.84],
  [37.56, 126.87],
  [37.545, 126.9],
  [37.535, 126.925],
  [37.53, 126.95],
  [37.518, 126.98],
  [37.515, 127.0],
  [37.525, 127.02],
  [37.53, 127.05],
  [37.525, 127.075],
  [37.53, 127.1],
  [37.545, 127.12],
  [37.56, 127.15],
  [37.57, 127.18],
];

/** The nearest landmark's name within `withinM` metres, for naming a picked point. */
export function nearestLandmark(p: { lat: number; lng: number }, withinM = 800): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const l of LANDMARKS) {
    const d = distanceMeters(p, l);
    if (d <= withinM && (!best || d < best.d)) best = { name: l.name ?? "", d };
  }
  return best?.name;
}
