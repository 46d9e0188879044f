import { createElement, useEffect, useState } from "react";

// Mounts its children one frame late. A heavy picture (a chart that measures its box and its
// labels) mounted together with the numbers around it holds up their first paint; wrapped in
// this, the numbers are drawn first and the picture in the next task, while a box of the
// picture's height keeps everything below it in place.
export function AfterPaint({ children, height }) {
  const [drawn, setDrawn] = useState(false);
  useEffect(() => {
    let timer;
    const frame = requestAnimationFrame(() => {
      timer = setTimeout(() => setDrawn(true), 0);
    });
    return () => {
      cancelAnimationFrame(frame);
      clearTimeout(timer);
    };
  }, []);
  return drawn ? children : createElement("div", { style: { height, width: "100%" }, "aria-hidden": true });
}
