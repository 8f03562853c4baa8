import { defineConfig } from "vitest/config";

// The console component serves this build from Spin `files` under /console/ (see
// functions/console/src/assets.rs): hashed names under assets/ are cached for a year.
export default defineConfig({
  base: "/console/",
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    // Nothing inlined as data: URLs or inline script; the CSP allows only 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
