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

export const CallBody = Fields(
  { to_uid: Id('A friend to call.'), offer: Type.Optional(Signal('The SDP offer.')) },
  { examples: [{ to_uid: 2, offer: { type: 'offer', sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' } }] },
)
export const CallReply = Type.Object(
  {
    call_id: Id('The call.'),
    status: Type.Enum(['ringing', 'busy', 'offline'], {
      description: '`ringing`: the callee got `call_request`. `busy`: one of you is in a call. `offline`: the callee has no live poll.',
    }),
    ring_seconds: Type.Number({ description: 'The call times out after this long unanswered (CALL_RING_SECONDS).' }),
  },
  { $id: 'Call', description: 'A call just placed.', examples: [{ call_id: 1, status: 'ringing', ring_seconds: 30 }] },
)
export const CallIdBody = Fields({ call_id: Id('The call.') }, { examples: [{ call_id: 1 }] })
export const AcceptCallBody = Fields(
  { call_id: Id('The call.'), answer: Type.Optional(Signal('The SDP answer.')) },
  { examples: [{ call_id: 1, answer: { type: 'answer', sdp: 'v=0\r\no=- 2890844526 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' } }] },
)
export const AcceptCallReply = Type.Object(
  {
    call_id: Id('The call.'),
    ice_servers: Type.Array(IceServer, { description: 'STUN/TURN servers (ICE_SERVERS); the caller gets them in `call_accepted`.' }),
  },
  {
    examples: [
      {
        call_id: 1,
        ice_servers: [{ urls: 'stun:stun.example.com:3478' }, { urls: ['turn:turn.example.com:3478'], username: 'messenger', credential: 's3cret' }],
      },
    ],
  },
)
export const CallSignalBody = Fields(
  { call_id: Id('The call.'), payload: Signal('An offer, answer or ICE candidate.') },
  { examples: [{ call_id: 1, payload: { candidate: 'candidate:1 1 udp 2122260223 192.168.1.20 54400 typ host', sdpMid: '0', sdpMLineIndex: 0 } }] },
)
