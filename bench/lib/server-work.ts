// What the server did during a figure group, read off its /metrics before and after:
// requests per route, how the direct sends and log reads were grouped, the push
// look-ups for recipients without a poll held in the process, and the users recorded as
// seen (a sweep records every poll held or ended: work beside the figure's own). Printed
// with the CPU split, it turns "how fast" into "how much work per message".
const COUNTERS = [
  'messenger_direct_sends_total',
  'messenger_direct_send_statements_total',
  'messenger_log_reads_total',
  'messenger_log_read_statements_total',
  'messenger_log_reads_skipped_total',
  'messenger_push_lookups_total',
  'messenger_push_lookup_statements_total',
  'messenger_presence_seen_total',
  'messenger_presence_groups_total',
] as const

export type ServerWork = Map<string, number>

/** Counter values (summed over labels); requests are keyed `requests <route>`. */
export async function serverWork(base: string): Promise<ServerWork> {
  const work: ServerWork = new Map()
  const response = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) })
  for (const line of (await response.text()).split('\n')) {
    const request = /^http_request_duration_seconds_count\{[^}]*route="([^"]+)"[^}]*\} (\d+)/.exec(line)
    const counter = /^(\w+)(?:\{[^}]*\})? (\d+)/.exec(line)
    const [key, value] = request ? [`requests ${request[1]}`, request[2]] : counter ? [counter[1], counter[2]] : []
    if (key && (request || (COUNTERS as readonly string[]).includes(key))) work.set(key, (work.get(key) ?? 0) + Number(value))
  }
  return work
}

/** One line: the busiest routes, and sends and reads per statement, between two readings. */
export function describeWork(before: ServerWork, after: ServerWork): string {
  const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0)
  const routes = [...after.keys()]
    .filter((key) => key.startsWith('requests ') && delta(key) > 0)
    .sort((a, b) => delta(b) - delta(a))
    .slice(0, 4)
    .map((key) => `${key.slice('requests '.length)} ${delta(key)}`)
  const grouped = (what: string, items: string, statements: string) => {
    const perStatement = delta(statements) > 0 ? (delta(items) / delta(statements)).toFixed(1) : '-'
    return `${what} ${delta(items)} in ${delta(statements)} statements (${perStatement} each)`
  }
  return (
    `requests: ${routes.join(', ') || 'none'}; ` +
    `${grouped('direct sends', 'messenger_direct_sends_total', 'messenger_direct_send_statements_total')}; ` +
    `${grouped('log reads', 'messenger_log_reads_total', 'messenger_log_read_statements_total')}, ` +
    `${delta('messenger_log_reads_skipped_total')} skipped; ` +
    `${grouped('push look-ups', 'messenger_push_lookups_total', 'messenger_push_lookup_statements_total')}; ` +
    `${grouped('users seen', 'messenger_presence_seen_total', 'messenger_presence_groups_total')}`
  )
}
