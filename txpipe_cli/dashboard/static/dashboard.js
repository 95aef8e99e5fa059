// The analysts' dashboard: a US map shaded by gross sales per capita, a state picker, the picked state's
// figures and top pizza types, and how fresh the reporting views are (with a button to refresh them).
//
// Plain JS over d3 v7 and topojson-client, vendored in static/vendor/ (no build step, nothing from a CDN).
// It reads the JSON API of txpipe_cli/dashboard/server.py. First render: the atlas and /api/states load in
// parallel, the map is drawn, then the picked state (?state=TX, or a name or its start: ?state=tex; else the
// top-ranked) is fetched. Which state a text names is the server's answer (txpipe_cli/states.py, the rule of
// `txpipe report --state`); a text naming none keeps the state shown and says so under the picker. Every text
// it inserts goes through textContent (d3's .text()), never innerHTML. The API answers only to this run's
// cookie (set when the page was opened with its token): a 401 (the dashboard was restarted, say) stops the
// page, which says where the new URL is, instead of retrying.
(function () {
  "use strict";

  const ATLAS_URL = "/static/vendor/states-albers-10m.json";
  const POLL_IDLE_MS = 15000;
  const POLL_REFRESHING_MS = 2000;

  // The page's words and figures (static/text.js).
  const { fmtCount, fmtMoney, plural, perCapita, freshnessText } = window.txpipeText;
  const $ = (id) => document.getElementById(id);

  const app = {
    rows: [], // /api/states rows by rank, cached in memory; refetched when a refresh ends
    byCode: new Map(),
    shapes: new Map(), // state code -> SVG path data, for the picked state's outline
    picked: null,
    detail: null, // the picked state's /api/states/{code} answer, kept to redraw the chart on resize
    loadSeq: 0, // a state's answer is shown only if it is still the one picked
    pollSeq: 0, // likewise for freshness polls
    pollTimer: 0,
    refreshing: false,
    locked: false, // a 401: nothing more is asked until the page is opened with the new URL
  };

  async function api(path, options) {
    const res = await fetch(path, Object.assign({ cache: "no-store" }, options));
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      // not JSON: the status below says what happened
    }
    if (!res.ok) {
      const err = new Error((body && body.error) || `HTTP ${res.status} from ${path}`);
      err.status = res.status;
      if (res.status === 401) lock(err.message);
      throw err;
    }
    return body;
  }

  function showError(message) {
    if (app.locked) return; // the 401's message stays
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function lock(message) {
    showError(message.charAt(0).toUpperCase() + message.slice(1));
    app.locked = true;
    clearTimeout(app.pollTimer);
    $("refresh-button").disabled = true;
  }

  // ---- the states: list, picker, map ----

  async function loadStates() {
    const data = await api("/api/states");
    app.rows = data.states;
    app.byCode = new Map(app.rows.map((r) => [r.state, r]));
    $("ranking").textContent = data.ranking || "";
    const byName = [...app.rows].sort((a, b) => d3.ascending(a.state_name, b.state_name));
    d3.select("#state-list").selectAll("option").data(byName).join("option")
      .attr("value", (r) => `${r.state_name} (${r.state})`);
  }

  // What to ask the server for: the code when the text is one (the map, a shared link, "ny") or a datalist
  // option ("Texas (TX)"), else the text as typed: the server resolves names and their starts ("tex", "new y")
  // as `txpipe report --state` does, and answers 404 with one line for anything else.
  function asked(text) {
    const typed = String(text || "").trim();
    const option = typed.match(/\(([A-Za-z]{2})\)$/);
    const code = (option ? option[1] : typed).toUpperCase();
    return app.byCode.has(code) ? code : typed;
  }

  function say(message) {
    $("picker-message").textContent = message;
  }

  async function chooseTyped() {
    const input = $("state-picker");
    const typed = input.value.trim();
    if (!typed) return;
    if ((await pick(typed)) && input.value.trim() === typed) input.value = "";
  }

  function drawMap(atlas) {
    const codeByName = new Map(app.rows.map((r) => [r.state_name, r.state]));
    const features = topojson.feature(atlas, atlas.objects.states).features;
    const path = d3.geoPath(); // null projection: the atlas is already Albers USA in a 975x610 frame
    const shapes = d3.select("#states").selectAll("path").data(features).join("path")
      .attr("class", "state")
      .attr("d", path);
    const known = shapes.filter((f) => codeByName.has(f.properties.name));
    known.each((f) => {
      f.properties.code = codeByName.get(f.properties.name);
      app.shapes.set(f.properties.code, path(f));
    });
    known
      .attr("data-state", (f) => f.properties.code)
      .attr("tabindex", 0)
      .attr("role", "button")
      .attr("aria-label", (f) => f.properties.name)
      .on("click", (event, f) => pick(f.properties.code))
      .on("keydown", (event, f) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault(); // Space would scroll the page
          pick(f.properties.code);
        }
      })
      .append("title");
  }

  function shadeMap() {
    const selling = app.rows.filter((row) => row.gross_sales > 0).map(perCapita);
    const max = d3.max(selling) || 0;
    // From the lowest selling state to the highest, not from zero: with customers spread by population the
    // states sit close together per capita, and a ramp from zero would paint them all one dark blue.
    const min = selling.length > 1 && d3.min(selling) < max ? d3.min(selling) : 0;
    // Start the ramp at a visible blue, so the lowest selling state stays apart from the grey of no sales.
    const color = d3.scaleSequential([min, max || 1], (t) => d3.interpolateBlues(0.15 + 0.85 * t));
    d3.selectAll("#states path[data-state]").each(function (f) {
      const row = app.byCode.get(f.properties.code);
      const sold = Boolean(row && row.gross_sales > 0);
      // An inline style, not the fill attribute: the stylesheet's grey would win over an attribute.
      d3.select(this).style("fill", sold ? color(perCapita(row)) : null).classed("no-sales", !sold);
      d3.select(this).select("title").text(
        sold ? `${row.state_name}: ${fmtMoney(perCapita(row))} per 100,000 residents` : `${f.properties.name}: no sales yet`,
      );
    });
    const stops = d3.range(0, 1.0001, 0.1).map((t) => color(min + t * ((max || 1) - min)));
    $("legend-bar").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    $("legend-min").textContent = fmtMoney(min);
    $("legend-max").textContent = fmtMoney(max);
    $("legend-scale").hidden = !max; // no state has sales: only "no sales" applies
  }

  function outlinePicked() {
    d3.selectAll("#states path[data-state]").attr("aria-pressed", (f) => String(f.properties.code === app.picked));
    // A separate outline on top, rather than raising the picked path: moving a focused node would blur it.
    d3.select("#picked-outline").attr("d", app.shapes.get(app.picked) || null);
  }

  // ---- the picked state ----

  // Shows the state `text` names (a code, a name or its start). how: "push" a history entry (a user's pick),
  // "replace" it (the first pick), or "none" (back/forward, a reload). A text naming no one state leaves the
  // state shown as it was and says why under the picker ("ZZ is not a US state ...", "new matches New
  // Hampshire, ..."); `keepMessage` keeps that line when the state shown instead is picked. Resolves to whether
  // the text's state is shown.
  async function pick(text, how = "push", keepMessage = false) {
    const wanted = asked(text);
    if (!wanted) return false;
    const seq = ++app.loadSeq;
    const previous = app.picked;
    if (app.byCode.has(wanted)) {
      app.picked = wanted; // a code: outlined at once, and what a reload asks for if this read fails
      outlinePicked();
    }
    delete document.body.dataset.ready;
    $("state-panel").setAttribute("aria-busy", "true");
    let detail;
    try {
      detail = await api(`/api/states/${encodeURIComponent(wanted)}`);
    } catch (e) {
      if (seq !== app.loadSeq) return false;
      $("state-panel").removeAttribute("aria-busy");
      if (e.status === 404) {
        say(e.message);
        app.picked = previous;
        outlinePicked();
        if (app.detail) document.body.dataset.ready = "1"; // the state shown before is still shown, whole
      } else {
        showError(`Could not load ${wanted}: ${e.message}`);
      }
      return false;
    }
    if (seq !== app.loadSeq) return false; // another state was picked meanwhile
    const code = detail.state;
    if (how !== "none") {
      const url = new URL(window.location.href);
      url.searchParams.set("state", code);
      if (how === "push" && code !== previous) history.pushState({ state: code }, "", url);
      else history.replaceState({ state: code }, "", url);
    }
    app.picked = code;
    outlinePicked();
    if (!keepMessage) say("");
    showError("");
    app.detail = detail;
    renderState(detail);
    $("state-panel").removeAttribute("aria-busy");
    document.body.dataset.state = detail.state;
    document.body.dataset.ready = "1";
    if (!performance.getEntriesByName("txpipe-first-render").length) performance.mark("txpipe-first-render");
    return true;
  }

  function renderState(s) {
    $("state-name").textContent = s.state_name;
    $("state-code").textContent = s.state;
    $("state-rank").textContent = `#${s.rank} of ${app.rows.length}`;
    $("total-pizzas").textContent = fmtCount(s.total_pizzas);
    $("gross-sales").textContent = fmtMoney(s.gross_sales);
    $("per-capita").textContent = fmtMoney(perCapita(s));
    $("unique-customers").textContent = fmtCount(s.unique_customers);
    drawChart(s);
  }

  // Top pizza types as two horizontal bars each, pizzas sold and gross sales (each on its own scale), drawn in
  // pixels at the chart's width (redrawn on resize) so the labels keep their size on any screen.
  function drawChart(s) {
    const top = s.top_pizzas || [];
    const label = (p) => `${plural(p.total_pizzas, "pizza")} · ${fmtMoney(p.gross_sales)}`;
    $("chart-empty").hidden = top.length > 0;
    $("chart-empty").textContent = top.length ? "" : `No sales yet in ${s.state_name}`;
    $("chart-key").hidden = !top.length;
    const svg = d3.select("#chart");
    const width = Math.max(260, svg.node().parentNode.clientWidth || 480);
    const row = 64;
    const range = [0, Math.max(60, width - 190)];
    const measures = [
      { key: "total_pizzas", y: 20, cls: "pizzas", text: (p) => plural(p.total_pizzas, "pizza"),
        x: d3.scaleLinear([0, d3.max(top, (p) => p.total_pizzas) || 1], range) },
      { key: "gross_sales", y: 40, cls: "sales", text: (p) => fmtMoney(p.gross_sales),
        x: d3.scaleLinear([0, d3.max(top, (p) => p.gross_sales) || 1], range) },
    ];
    svg
      .style("display", top.length ? null : "none")
      .attr("viewBox", `0 0 ${width} ${row * top.length}`)
      .attr("height", row * top.length)
      .attr("aria-label", `Top pizza types in ${s.state_name}: ${top.map((p) => `${p.pizza_type}, ${label(p)}`).join("; ")}`);
    const bars = svg.selectAll("g.bar").data(top).join((enter) => {
      const g = enter.append("g").attr("class", "bar");
      g.append("text").attr("class", "bar-name").attr("y", 14);
      for (const m of measures) {
        g.append("rect").attr("class", m.cls).attr("y", m.y).attr("height", 16).attr("rx", 2);
        g.append("text").attr("class", `bar-value ${m.cls}`).attr("y", m.y + 13);
      }
      return g;
    });
    bars
      .attr("transform", (p, i) => `translate(0,${i * row})`)
      .attr("data-pizza-type", (p) => p.pizza_type)
      .attr("data-pizzas", (p) => p.total_pizzas)
      .attr("data-gross-sales", (p) => p.gross_sales);
    bars.select(".bar-name").text((p) => p.pizza_type);
    for (const m of measures) {
      const barWidth = (p) => Math.max(2, m.x(p[m.key]));
      bars.select(`rect.${m.cls}`).attr("width", barWidth);
      bars.select(`text.bar-value.${m.cls}`).attr("x", (p) => barWidth(p) + 8).text(m.text);
    }
  }

  // ---- freshness and refresh ----

  function setRefreshing(on) {
    app.refreshing = on;
    $("refresh-button").disabled = on;
    $("refresh-button").textContent = on ? "Refreshing…" : "Refresh views";
  }

  function schedulePoll(ms) {
    clearTimeout(app.pollTimer);
    app.pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    const seq = ++app.pollSeq;
    clearTimeout(app.pollTimer);
    let f = null;
    try {
      f = await api("/api/freshness");
    } catch (e) {
      if (seq === app.pollSeq) $("freshness").textContent = `Could not read how fresh the views are: ${e.message}`;
    }
    if (seq !== app.pollSeq || app.locked) return; // a newer poll (or a refresh) took over, or a 401
    if (f) {
      $("freshness").textContent = freshnessText(f);
      const ended = app.refreshing && !f.refreshing;
      setRefreshing(Boolean(f.refreshing));
      if (ended) reloadStates();
    }
    schedulePoll(app.refreshing ? POLL_REFRESHING_MS : POLL_IDLE_MS);
  }

  async function startRefresh() {
    app.pollSeq++; // an answer already on its way predates the refresh: ignore it
    clearTimeout(app.pollTimer);
    setRefreshing(true);
    try {
      await api("/api/refresh", { method: "POST", headers: { "X-Txpipe-Dashboard": "1" } });
    } catch (e) {
      if (app.locked) return; // a 401: the page says why
      if (e.status !== 409) {
        // 409: a refresh is already running; wait for it as for our own
        setRefreshing(false);
        showError(`Could not start a refresh: ${e.message}`);
        schedulePoll(0);
        return;
      }
    }
    schedulePoll(POLL_REFRESHING_MS);
  }

  async function reloadStates() {
    try {
      await loadStates();
    } catch (e) {
      showError(`Could not reload the states: ${e.message}`);
      return;
    }
    shadeMap();
    if (app.picked) pick(app.picked, "none", true);
  }

  // ---- start ----

  function wire() {
    const input = $("state-picker");
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        chooseTyped();
      }
    });
    // Choosing a datalist option fills in "Texas (TX)": pick it straight away.
    input.addEventListener("input", () => {
      if (/\([A-Za-z]{2}\)$/.test(input.value)) chooseTyped();
    });
    $("picker").addEventListener("submit", (event) => {
      event.preventDefault();
      chooseTyped();
    });
    $("refresh-button").addEventListener("click", startRefresh);
    window.addEventListener("popstate", () => {
      const wanted = new URLSearchParams(window.location.search).get("state");
      if (wanted && asked(wanted) !== app.picked) pick(wanted, "none");
    });
    let frame = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => app.detail && drawChart(app.detail));
    });
  }

  // The atlas and the states in parallel, then the map, then the picked state. If the server cannot read
  // the states (the runtime is down, say), it says so and tries again.
  async function firstRender() {
    let atlas;
    try {
      [atlas] = await Promise.all([d3.json(ATLAS_URL), loadStates()]);
    } catch (e) {
      if (e.status === 401 || app.locked) return; // retrying cannot help: the page says why
      showError(`Could not load the dashboard: ${e.message} (trying again in 5 s)`);
      setTimeout(firstRender, 5000);
      return;
    }
    drawMap(atlas);
    shadeMap();
    const top = app.rows[0];
    if (!top) {
      showError("The server listed no states.");
      return;
    }
    const wanted = new URLSearchParams(window.location.search).get("state");
    // A link naming no state (?state=ZZ) opens on the top state, the line under the picker saying why.
    if (!wanted || !(await pick(wanted, "replace"))) {
      if (!app.picked) pick(top.gross_sales > 0 ? top.state : "TX", "replace", Boolean(wanted));
    }
  }

  wire();
  poll();
  firstRender();
})();
