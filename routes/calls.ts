// Voice-call signalling (src/services/calls.ts). Each command answers at once; the other
// side learns of it through update_data: `call_request`, `call_accepted`, `call_rejected`,
// `call_ended`, `call_timeout`, `call_busy`, `call_offline`, `call_missed`, `call_signal`,
// each with `call_id`.
import { commandsOf } from './command.js'
import { Empty, named } from '../src/schemas/common.js'
import { AcceptCallBody, AcceptCallReply, CallBody, CallIdBody, CallReply, CallSignalBody } from '../src/schemas/calls.js'
import type { Calls } from '../src/services/calls.js'

const command = commandsOf('calls')

export const call = command({
  name: 'call',
  summary: 'Call a friend',
  description:
    'Rings the callee (`call_request` with the offer) for CALL_RING_SECONDS (30); then both get `call_timeout`. ' +
    '`status` says `busy` when either of you is in a call, `offline` when the callee has no live poll (the caller also ' +
    'gets `call_busy` / `call_offline`). 403 `not_friends` for anyone but a friend.',
  body: CallBody,
  reply: named(CallReply),
  errors: [403],
  run: ({ app, session }, body) => app.services.calls.call(session.userId, body.to_uid, body.offer),
})

export const acceptCall = command({
  name: 'accept_call',
  summary: 'Answer a ringing call',
  description: 'The caller gets `call_accepted` with the answer and the ICE servers. 409 when the call no longer rings.',
  body: AcceptCallBody,
  reply: AcceptCallReply,
  errors: [404, 409],
  run: ({ app, session }, body) => app.services.calls.accept(session.userId, body.call_id, body.answer),
})

/** A command that names a call and acts on it: `{call_id}` in, `{}` out. */
function callIdCommand(
  spec: { name: string; summary: string; description: string },
  act: (calls: Calls, userId: number, callId: number) => Promise<void>,
) {
  return command({
    ...spec,
    body: CallIdBody,
    reply: Empty,
    errors: [404, 409],
    run: async ({ app, session }, body) => {
      await act(app.services.calls, session.userId, body.call_id)
      return {}
    },
  })
}

export const rejectCall = callIdCommand(
  { name: 'reject_call', summary: 'Decline a ringing call', description: 'The caller gets `call_rejected`.' },
  (calls, userId, callId) => calls.reject(userId, callId),
)

export const hangUp = callIdCommand(
  { name: 'hang_up', summary: 'End a call, ringing or running', description: 'The other side gets `call_ended`.' },
  (calls, userId, callId) => calls.hangUp(userId, callId),
)

export const callSignal = command({
  name: 'call_signal',
  summary: 'Relay an offer, answer or ICE candidate',
  description: 'The other side gets `call_signal` with the payload, untouched.',
  body: CallSignalBody,
  reply: Empty,
  errors: [404, 409],
  run: async ({ app, session }, body) => {
    await app.services.calls.signal(session.userId, body.call_id, body.payload)
    return {}
  },
})
