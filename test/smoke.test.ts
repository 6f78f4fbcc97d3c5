import t from 'tap'
import { build, call, signUp } from './helper.js'

t.test('registration and authorization', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  t.ok(alice.uid > 0)
  const data = await call(app, 'get_data', {}, alice.token)
  t.same(data.body, { contacts: [], settings: [] })
})
