// The overview's charts (Apache ECharts), drawn from the figures the page carries as JSON; without scripts the
// page shows the same figures as tables.
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof echarts === "undefined") { return; }
    var parsed = JSON.parse(source.textContent);
    var data = parsed.data, labels = parsed.labels;
    var grid = { left: 64, right: 24, top: 40, bottom: 48 };
    function chart(id, option) {
      var element = document.getElementById(id);
      if (!element) { return; }
      var drawn = echarts.init(element);
      drawn.setOption(Object.assign({ animation: false, grid: grid, tooltip: { trigger: "axis" } }, option));
      window.addEventListener("resize", function () { drawn.resize(); });
    }
    chart("chart-trades", {
      xAxis: { type: "category", data: data.trades.days },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: labels.trades, type: "line", data: data.trades.trades }]
    });
    var currencies = Object.keys(data.trades.amounts);
    chart("chart-amounts", {
      legend: { data: currencies },
      xAxis: { type: "category", data: data.trades.days },
      yAxis: { type: "value" },
      // minor units from the server, drawn in major units (the currency's decimal places)
      series: currencies.map(function (c) {
        var unit = Math.pow(10, data.trades.places[c]);
        return { name: c, type: "line", data: data.trades.amounts[c].map(function (v) { return v / unit; }) };
      })
    });
    var decisions = Object.keys(data.verdicts.decisions);
    var colours = { accepted: "#1a6632", review: "#b8860b", rejected: "#a4161a" };
    chart("chart-verdicts", {
      legend: { data: decisions },
      xAxis: { type: "category", data: data.verdicts.stages },
      yAxis: { type: "value", minInterval: 1 },
      series: decisions.map(function (d) {
        return { name: d, type: "bar", stack: "verdicts", itemStyle: { color: colours[d] }, data: data.verdicts.decisions[d] };
      })
    });
    chart("chart-failing", {
      grid: { left: 220, right: 24, top: 16, bottom: 32 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", inverse: true, data: data.failing.map(function (f) { return f.rule_id + " " + f.check_name; }) },
      series: [{ name: labels.failures, type: "bar", itemStyle: { color: "#a4161a" }, data: data.failing.map(function (f) { return f.failures; }) }]
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
