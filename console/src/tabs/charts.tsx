import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { count } from '../format.js';
import { WINDOW_SECONDS, type Sample, type StatsSeries } from '../stats.js';

type Column = (s: Sample) => number | null;

interface ChartSpec {
  readonly title: string;
  readonly testId: string;
  readonly series: readonly { readonly label: string; readonly color: string; readonly fill?: string; readonly value: Column }[];
}

const ONLINE: ChartSpec = {
  title: 'Clients online',
  testId: 'chart-online',
  series: [{ label: 'online', color: '#2563eb', fill: 'rgba(37, 99, 235, 0.12)', value: (s) => s.online }],
};

const RATES: ChartSpec = {
  title: 'Messages per second',
  testId: 'chart-rates',
  series: [
    { label: 'delivered/s', color: '#16a34a', fill: 'rgba(22, 163, 74, 0.10)', value: (s) => s.delivered },
    { label: 'acked/s', color: '#9333ea', value: (s) => s.acked },
    { label: 'accepted/s', color: '#ea580c', value: (s) => s.accepted },
  ],
};

const round = (v: number): string => count(Math.round(v * 10) / 10);
const MIN_SPAN_SECONDS = 60;
const two = (n: number): string => String(n).padStart(2, '0');
/** An x tick: local wall-clock time, 15:04:05. */
const clock = (t: number): string => {
  const d = new Date(t * 1000);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
};

function toData(spec: ChartSpec, samples: readonly Sample[]): uPlot.AlignedData {
  return [samples.map((s) => s.t), ...spec.series.map((c) => samples.map(c.value))];
}

function Chart(props: { spec: ChartSpec; series: StatsSeries }) {
  const { spec, series } = props;
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const size = (): { width: number; height: number } => ({ width: Math.max(320, el.clientWidth), height: 200 });
    const plot = new uPlot(
      {
        ...size(),
        // The x axis is server time in seconds: the last WINDOW_SECONDS, sliding.
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.15))] } },
        axes: [
          {
            stroke: '#64748b',
            grid: { stroke: '#eef2f6' },
            ticks: { stroke: '#e2e8f0' },
            space: 70,
            values: (_u, splits) => splits.map(clock),
          },
          {
            stroke: '#64748b',
            grid: { stroke: '#eef2f6' },
            ticks: { stroke: '#e2e8f0' },
            size: 56,
            values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? count(v) : v.toFixed(1))),
          },
        ],
        series: [
          {},
          ...spec.series.map((c) => ({
            label: c.label,
            stroke: c.color,
            width: 2,
            ...(c.fill !== undefined ? { fill: c.fill } : {}),
            value: (_u: uPlot, v: number | null) => (v === null ? '–' : round(v)),
            // A gap in sampling (tab hidden) stays a gap instead of a misleading straight line.
            spanGaps: false,
          })),
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      },
      toData(spec, series.samples),
      el,
    );
    const update = (): void => {
      const samples = series.samples;
      const last = samples[samples.length - 1];
      plot.batch(() => {
        plot.setData(toData(spec, samples), false);
        // The last WINDOW_SECONDS, or less while there is less (but at least a minute).
        if (last !== undefined) plot.setScale('x', { min: Math.min(last.t - MIN_SPAN_SECONDS, Math.max(samples[0]!.t, last.t - WINDOW_SECONDS)), max: last.t });
      });
    };
    update();
    const unsubscribe = series.subscribe(update);
    const ro = new ResizeObserver(() => plot.setSize(size()));
    ro.observe(el);
    return () => {
      unsubscribe();
      ro.disconnect();
      plot.destroy();
    };
  }, [spec, series]);

  const latest = series.latest;
  return (
    <div class="card chart">
      <div class="chart-head">
        <h2>{spec.title}</h2>
        {spec.series.map((c) => {
          const v = latest === undefined ? null : c.value(latest);
          let max = 0;
          for (const s of series.samples) max = Math.max(max, c.value(s) ?? 0);
          return (
            <span key={c.label} class="now" style={{ color: c.color }}>
              {c.label}
              <strong data-testid={`now-${c.label}`}>{v === null ? '–' : round(v)}</strong>
              <span class="muted small">
                {' '}
                (max <span data-testid={`max-${c.label}`}>{round(max)}</span>)
              </span>
            </span>
          );
        })}
      </div>
      <div ref={box} data-testid={spec.testId} />
    </div>
  );
}

export function ChartsTab(props: { series: StatsSeries }) {
  return (
    <div class="stack">
      <p class="muted">The last {WINDOW_SECONDS / 60} minutes, sampled every second while this app is open.</p>
      <Chart spec={ONLINE} series={props.series} />
      <Chart spec={RATES} series={props.series} />
    </div>
  );
}
