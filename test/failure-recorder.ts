// Keeps the failed tests of a TAP stream, with their subtest path and diagnostics, so the
// runner can repeat them after the last line: a long log is often read from its tail only.
// Every `not ok` line is kept (a failed assertion, then each subtest and file it fails);
// `# TODO` and `# SKIP` lines are not failures.
const MAX_SUMMARY_LINES = 400

export class FailureRecorder {
  private pending = ''
  /** The open `# Subtest:` names, by indentation depth. */
  private readonly subtests: string[] = []
  private readonly kept: string[] = []
  /** Indentation of the `not ok` whose YAML block is being copied, else -1. */
  private diagnosticsIndent = -1

  write(text: string): void {
    const lines = (this.pending + text).split('\n')
    this.pending = lines.pop() ?? ''
    for (const line of lines) this.line(line)
  }

  summary(): string {
    if (this.pending) this.line(this.pending)
    this.pending = ''
    if (this.kept.length === 0) return ''
    const shown = this.kept.slice(0, MAX_SUMMARY_LINES)
    const more = this.kept.length - shown.length
    return ['# failed, repeated from above:', ...shown, ...(more > 0 ? [`# … and ${more} more lines`] : [])].join('\n')
  }

  private line(line: string): void {
    const indent = line.length - line.trimStart().length
    const depth = Math.floor(indent / 4)
    const text = line.trim()
    if (this.diagnosticsIndent >= 0) {
      if (indent > this.diagnosticsIndent) {
        this.kept.push(line)
        if (text === '...') this.diagnosticsIndent = -1
        return
      }
      this.diagnosticsIndent = -1
    }
    const subtest = /^# Subtest: (.*)$/.exec(text)
    if (subtest) {
      this.subtests.length = depth
      this.subtests[depth] = subtest[1]
      return
    }
    const failed = /^not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/.exec(text)
    if (failed && !/#\s*(TODO|SKIP)\b/i.test(text)) {
      const path = this.subtests.slice(0, depth).filter(Boolean).join(' > ')
      this.kept.push(path ? `${line}   (in: ${path})` : line)
      // An assertion's diagnostics say what was wanted and found; a subtest's or a file's
      // only where it started, after its failed assertions were already kept.
      const closesSubtest = this.subtests[depth] === failed[1]
      if (!closesSubtest) this.diagnosticsIndent = indent
    }
  }
}
