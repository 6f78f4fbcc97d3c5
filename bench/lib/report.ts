// Figures: each printed as one JSON line the moment it is measured (so a run that breaks
// half-way still leaves what it got), then all of them again as an aligned table with
// their targets, PASS or FAIL.

export interface Target {
  /** As shown in the table, e.g. "< 3 ms" or "ratio >= 1.0". */
  text: string
  pass(value: number, ratio: number | null): boolean
}

export interface FigureInput {
  figure: string
  value: number
  unit: string
  /** Name of the figure of the same run this one is compared with. */
  baseline?: string
  target?: Target
  /** Shown in the table; also in the JSON line. */
  note?: string
  /** Further measured detail for the JSON line only. */
  extra?: Record<string, unknown>
}

interface Recorded extends FigureInput {
  ratio: number | null
  pass: boolean | null
}

export const below = (limit: number, unit: string): Target => ({ text: `< ${limit} ${unit}`, pass: (v) => v < limit })
export const atMost = (limit: number, unit: string): Target => ({ text: `<= ${limit} ${unit}`, pass: (v) => v <= limit })
export const atLeast = (limit: number, unit: string): Target => ({ text: `>= ${limit} ${unit}`, pass: (v) => v >= limit })
export const zero: Target = { text: '= 0', pass: (v) => v === 0 }
export const ratioAtLeast = (limit: number): Target => ({ text: `ratio >= ${limit.toFixed(1)}`, pass: (_v, r) => r !== null && r >= limit })
export const ratioAtMost = (limit: number): Target => ({ text: `ratio <= ${limit.toFixed(1)}`, pass: (_v, r) => r !== null && r <= limit })

function round(value: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export class Report {
  private readonly figures: Recorded[] = []
  private readonly notes: string[] = []

  constructor(private readonly print: (line: string) => void = (line) => console.log(line)) {}

  value(name: string): number | undefined {
    return this.figures.find((f) => f.figure === name)?.value
  }

  add(input: FigureInput): void {
    const value = Number.isFinite(input.value) ? round(input.value, Math.abs(input.value) >= 100 ? 1 : 3) : Number.NaN
    const base = input.baseline !== undefined ? this.value(input.baseline) : undefined
    const ratio = base !== undefined && Number.isFinite(base) && base !== 0 && Number.isFinite(value) ? round(value / base, 3) : null
    const pass = input.target ? Number.isFinite(value) && input.target.pass(value, ratio) : null
    const recorded: Recorded = { ...input, value, ratio, pass }
    this.figures.push(recorded)
    this.print(
      JSON.stringify({
        figure: input.figure,
        value: Number.isFinite(value) ? value : null,
        unit: input.unit,
        baseline: input.baseline ?? null,
        ratio,
        ...(input.target ? { target: input.target.text, pass } : {}),
        ...(input.note ? { note: input.note } : {}),
        ...input.extra,
      }),
    )
  }

  /** A remark printed under the table (e.g. a level capped by the fd limit). */
  note(text: string): void {
    this.notes.push(text)
    this.print(`# ${text}`)
  }

  table(): string {
    const header = ['figure', 'value', 'unit', 'baseline', 'ratio', 'target', 'result', 'note']
    const rows = this.figures.map((f) => [
      f.figure,
      Number.isFinite(f.value) ? String(f.value) : 'n/a',
      f.unit,
      f.baseline ?? '',
      f.ratio === null ? '' : f.ratio.toFixed(3),
      f.target?.text ?? '',
      f.pass === null ? '' : f.pass ? 'PASS' : 'FAIL',
      f.note ?? '',
    ])
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
    const numeric = new Set([1, 4])
    const line = (cells: string[]) =>
      cells
        .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd()
    const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)]
    const judged = this.figures.filter((f) => f.pass !== null)
    out.push('', `targets: ${judged.filter((f) => f.pass).length} PASS, ${judged.filter((f) => !f.pass).length} FAIL`)
    for (const note of this.notes) out.push(`note: ${note}`)
    return out.join('\n')
  }
}
