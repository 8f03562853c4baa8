import { describe, expect, it } from "vitest";
import { distanceMeters, formatDistance, MAP_HEIGHT, MAP_WIDTH, nearestLandmark, onMap, project, SEOUL, unproject } from "./geo";

describe("the map of Seoul", () => {
  it("draws the box's corners at the drawing's corners", () => {
    expect(project({ lat: SEOUL.north, lng: SEOUL.west })).toEqual({ x: 0, y: 0 });
    const se = project({ lat: SEOUL.south, lng: SEOUL.east });
    expect(se.x).toBeCloseTo(MAP_WIDTH);
    expect(se.y).toBeCloseTo(MAP_HEIGHT);
  });

  it("finds the point clicked again to about a metre", () => {
    const seoulStation = { lat: 37.5547, lng: 126.9707 };
    const back = unproject(project(seoulStation));
    expect(distanceMeters(back, seoulStation)).toBeLessThan(2);
  });

  it("knows what lies on the map", () => {
    expect(onMap({ lat: 37.5665, lng: 126.978 })).toBe(true);
    expect(onMap({ lat: 35.1796, lng: 129.0756 })).toBe(false); // Busan
  });

  it("measures Seoul Station to Gangnam Station as about 8 km", () => {
    const d = distanceMeters({ lat: 37.5547, lng: 126.9707 }, { lat: 37.4979, lng: 127.0276 });
    expect(d).toBeGreaterThan(7800);
    expect(d).toBeLessThan(8100);
    expect(formatDistance(d)).toBe("8.1 km");
    expect(formatDistance(184)).toBe("184 m");
  });

  it("names a picked point after a landmark only when it is near one", () => {
    expect(nearestLandmark({ lat: 37.555, lng: 126.971 })).toBe("Seoul Station");
    expect(nearestLandmark({ lat: 37.45, lng: 126.85 })).toBeUndefined();
  });
});
