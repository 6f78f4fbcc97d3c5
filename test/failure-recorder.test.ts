// The test runner repeats failures after the last line (test/run.ts): what it keeps.
import t from 'tap'
import { FailureRecorder } from './failure-recorder.js'

const stream = [
  '# Subtest: test/a.test.ts',
  '    # Subtest: sends',
  '        ok 1 - should be equal',
  '        not ok 2 - the cursor moves',
  '          ---',
  '          found: 1',
  '          wanted: 2',
  '          ...',
  '        not ok 3 - later # TODO',
  '        1..3',
  '    not ok 1 - sends # time=12.5ms',
  '      ---',
  '      at: {}',
  '      ...',
  '    # Subtest: reads',
  '        ok 1 - fine',
  '    ok 2 - reads # time=1ms',
  'not ok 1 - test/a.test.ts # time=40ms',
  '# Subtest: test/b.test.ts',
  'ok 2 - test/b.test.ts # time=3ms',
].join('\n')

t.test('keeps each failed assertion with its diagnostics and path, then the subtests it failed, across chunk borders', async (t) => {
  const recorder = new FailureRecorder()
  for (let i = 0; i < stream.length; i += 7) recorder.write(stream.slice(i, i + 7))
  t.equal(
    recorder.summary(),
    [
      '# failed, repeated from above:',
      'not ok - test/a.test.ts > sends > the cursor moves',
      '  found: 1',
      '  wanted: 2',
      'not ok - test/a.test.ts > sends',
      'not ok - test/a.test.ts',
    ].join('\n'),
  )
})

t.test('a stream with no failure leaves no summary', async (t) => {
  const recorder = new FailureRecorder()
  recorder.write('# Subtest: x\n    ok 1 - fine\nok 1 - x\n')
  t.equal(recorder.summary(), '')
})
