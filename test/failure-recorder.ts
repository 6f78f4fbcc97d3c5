// Keeps the failed tests of a TAP stream (parsed by tap's own tap-parser), so the runner
// can repeat them after the last line: a long log is often read from its tail only. Each
// failed assertion comes with its subtest path and its diagnostics (what was wanted and
// found, where), then each subtest and file it failed, by path only. TODO and SKIP points
// are not failures.
import { Parser, type Result } from 'tap-parser'
import { stringify } from 'tap-yaml'

const MAX_SUMMARY_LINES = 400

export class FailureRecorder {
  private readonly parser = new Parser()
  private readonly failed: Result[] = []

  constructor() {
    this.watch(this.parser)
  }

  write(text: string): void {
    this.parser.write(text)
  }

  summary(): string {
    this.parser.end()
    if (this.failed.length === 0) return ''
    const names = this.failed.map((point) => point.fullname)
    const lines = this.failed.flatMap((point) => {
      // A subtest that failed is listed after what failed inside it: its own diagnostics
      // only say where it started.
      const failedInside = names.some((name) => name.startsWith(`${point.fullname} > `))
      const diagnostics = !failedInside && point.diag ? stringify(point.diag).trimEnd().split('\n').map((line) => `  ${line}`) : []
      return [`not ok - ${point.fullname}`, ...diagnostics]
    })
    const shown = lines.slice(0, MAX_SUMMARY_LINES)
    const more = lines.length - shown.length
    return ['# failed, repeated from above:', ...shown, ...(more > 0 ? [`# … and ${more} more lines`] : [])].join('\n')
  }

  private watch(parser: Parser): void {
    parser.on('assert', (point: Result) => {
      if (!point.ok && !point.todo && !point.skip) this.failed.push(point)
    })
    parser.on('child', (child: Parser) => this.watch(child))
  }
}
