// The dashboard's words and figures, as text: number formats, plurals, per capita per 100,000 residents, and
// the freshness line. Pure functions over the API's JSON (no DOM, no fetch), loaded before dashboard.js, which
// reads them from window.txpipeText. Every text they make is inserted with textContent, never innerHTML.
(function () {
  "use strict";

  const PER = 100000; // per capita figures are shown per 100,000 residents (the API gives dollars per person)
  const fmtCount = d3.format(",");
  const fmtMoney = d3.format("$,.2f");
  const fmtUtc = d3.utcFormat("%Y-%m-%d %H:%M UTC");
  const plural = (n, word) => `${fmtCount(n)} ${word}${n === 1 ? "" : "s"}`;
  // The API gives dollars per person as an exact decimal string ("0.0000440072..."); the page shows it rounded.
  const perCapita = (row) => Number(row.gross_sales_per_capita) * PER;

  // The API's timestamps are ISO 8601 with any number of fractional digits; Date wants at most three.
  function parseTime(iso) {
    if (!iso) return null;
    const t = new Date(String(iso).replace(" ", "T").replace(/\.(\d+)/, (m, f) => `.${(f + "00").slice(0, 3)}`));
    return Number.isNaN(t.getTime()) ? null : t;
  }

  function ago(t) {
    const s = Math.max(0, (Date.now() - t.getTime()) / 1000);
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
    if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function freshnessText(f) {
    const refreshed = parseTime(f.views_refreshed_at);
    const parts = [
      refreshed ? `Views refreshed ${ago(refreshed)} (${fmtUtc(refreshed)})` : "Views not refreshed since they were created",
    ];
    const inWarehouse = f.awaiting_refresh || 0;
    if (f.awaiting_sync === null || f.awaiting_sync === undefined) {
      parts.push(
        (inWarehouse ? `${plural(inWarehouse, "order")} in the warehouse not in them yet` : "every order in the warehouse is in them") +
          " (could not count those awaiting the sync: the OLTP database did not answer)",
      );
    } else {
      const total = inWarehouse + f.awaiting_sync;
      parts.push(
        total
          ? `${plural(total, "order")} not in them yet (${fmtCount(inWarehouse)} in the warehouse, ${fmtCount(f.awaiting_sync)} awaiting the sync)`
          : "every stored order is in them",
      );
    }
    const synced = parseTime(f.last_sync_at);
    // "last sync that moved orders" on AWS: Redshift records no sync that had nothing to move (txpipe status says the same)
    const lastSync = f.last_sync_label || "last sync";
    parts.push(synced ? `${lastSync} ${ago(synced)}` : `no ${lastSync.replace(/^last /, "")} yet`);
    if (f.refresh_error) parts.push(`the last refresh failed: ${f.refresh_error}`);
    return parts.join(" · ");
  }

  window.txpipeText = { fmtCount, fmtMoney, plural, perCapita, freshnessText };
})();
