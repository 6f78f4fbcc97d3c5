import { Type } from 'typebox'
import { Fields, Id } from './common.js'

const Signal = (description: string) => Type.Unknown({ description: `${description} Opaque to the server; at most MAX_CALL_SIGNAL_BYTES (16 KiB) of JSON.` })

export const IceServer = Type.Object(
  {
    urls: Type.Union([Type.String(), Type.Array(Type.String())]),
    username: Type.Optional(Type.String()),
    credential: Type.Optional(Type.String()),
  },
  { $id: 'IceServer', description: 'A STUN or TURN server (WebRTC RTCIceServer).' },
)

export const CallBody = Fields({ to_uid: Id('A friend to call.'), offer: Type.Optional(Signal('The SDP offer.')) })
export const CallReply = Type.Object(
  {
    call_id: Id('The call.'),
    status: Type.Enum(['ringing', 'busy', 'offline'], {
      description: '`ringing`: the callee got `call_request`. `busy`: one of you is in a call. `offline`: the callee has no live poll.',
    }),
    ring_seconds: Type.Number({ description: 'The call times out after this long unanswered (CALL_RING_SECONDS).' }),
  },
  { $id: 'Call', description: 'A call just placed.' },
)
export const CallIdBody = Fields({ call_id: Id('The call.') })
export const AcceptCallBody = Fields({ call_id: Id('The call.'), answer: Type.Optional(Signal('The SDP answer.')) })
export const AcceptCallReply = Type.Object({
  call_id: Id('The call.'),
  ice_servers: Type.Array(IceServer, { description: 'STUN/TURN servers (ICE_SERVERS); the caller gets them in `call_accepted`.' }),
})
export const CallSignalBody = Fields({ call_id: Id('The call.'), payload: Signal('An offer, answer or ICE candidate.') })
