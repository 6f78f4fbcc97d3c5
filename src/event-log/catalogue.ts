// The event catalogue: every event a user's log can carry besides messages, each defined
// once, here, by its `type` and its payload. That one definition types the writers
// (appending an event that is not in the catalogue, or with the wrong payload, does not
// compile), is the `events_array` item schema of update_data, and is the OpenAPI
// document's `Event` (a oneOf with a discriminator on `type`), so a generated client
// narrows on `type` without casts.
import { Type, type Static, type TProperties } from 'typebox'
import { Id, UnixSeconds } from '../schemas/common.js'
import { ContactStatus } from '../schemas/contacts.js'
import { IceServer } from '../schemas/calls.js'

/** What every event carries, whatever its type (PROTOCOL A.6). */
const ENVELOPE = {
  eid: Id('The event id.'),
  ruid: Id('The user who caused the event.'),
  text: Type.String({ description: 'The login of `ruid` (the wiki\'s "addition").' }),
  time: UnixSeconds('When it happened.'),
}
type EnvelopeKey = keyof typeof ENVELOPE | 'type'

const schemaName = (type: string) => type.replace(/(^|_)(\w)/g, (_, _sep, letter: string) => letter.toUpperCase()) + 'Event'

function event<const T extends string, P extends TProperties>(type: T, description: string, payload: P) {
  return Type.Object(
    { eid: ENVELOPE.eid, type: Type.Literal(type), ruid: ENVELOPE.ruid, text: ENVELOPE.text, time: ENVELOPE.time, ...payload },
    { $id: schemaName(type), description },
  )
}

const RoomId = Id('The room.')
const MemberId = Id('The member concerned.')
const MsgId = Id('The message.')
const CallId = Id('The call.')
const Opaque = (description: string) => Type.Unknown({ description: `${description} Opaque JSON, relayed untouched.` })

export const EVENTS = [
  // Contacts (PROTOCOL A.4): told to the other side; `status` as the receiver now sees the contact.
  event('contact_request', '`ruid` asks you to become a contact.', { status: ContactStatus }),
  event('contact_accepted', '`ruid` accepted your request (or asked you back): you are friends.', { status: ContactStatus }),
  event('contact_denied', '`ruid` refused your request.', { status: ContactStatus }),
  event('contact_cancelled', '`ruid` withdrew the request they had sent you.', {}),
  event('contact_deleted', '`ruid` removed you from their contacts (and they from yours).', {}),
  // The life of a message: told to everyone who sees the conversation.
  event('message_edited', 'A message you can see was edited.', {
    msg_id: MsgId,
    msg: Type.String({ description: 'The new text.' }),
    edited_at: UnixSeconds('When it was edited.'),
    room_id: Type.Optional(Id('Set for room messages.')),
  }),
  event('reaction', '`ruid` added or removed an emoji reaction to a message you can see.', {
    msg_id: MsgId,
    emoji: Type.String({ description: 'The emoji.' }),
    added: Type.Boolean({ description: 'true: added; false: removed.' }),
    room_id: Type.Optional(Id('Set for room messages.')),
  }),
  event('message_pinned', '`ruid` pinned a message of a conversation you are in (see get_pins).', { msg_id: MsgId, room_id: Type.Optional(Id('Set for room messages.')) }),
  event('message_unpinned', '`ruid` unpinned a message of a conversation you are in.', { msg_id: MsgId, room_id: Type.Optional(Id('Set for room messages.')) }),
  event('messages_read', '`ruid` read your direct messages up to a message (they share read receipts).', {
    through_msg_id: Id('Every message of yours up to this one is read.'),
  }),
  event('message_deleted', 'A message you can see was deleted: drop it.', { msg_id: MsgId, room_id: Type.Optional(Id('Set for room messages.')) }),
  event('history_cleared', 'A conversation was cleared up to a message: for you (your other devices), or a room for everyone.', {
    through_msg_id: Type.Integer({ minimum: 0, description: 'Messages up to this id are gone (0: there were none).' }),
    to_uid: Type.Optional(Id('The other user, for a direct conversation.')),
    room_id: Type.Optional(Id('The room.')),
  }),
  // Rooms: told to every member (and to the user a change is about).
  event('member_joined', 'A user joined the room, or was added to it.', { room_id: RoomId, uid: MemberId, invited_by: Type.Optional(Id('Who added them, for an invitation.')) }),
  event('member_left', 'A member left the room.', { room_id: RoomId, uid: MemberId }),
  event('member_kicked', 'A member was removed from the room.', { room_id: RoomId, uid: MemberId }),
  event('member_banned', 'A user was banned from the room: out of it at once.', { room_id: RoomId, uid: MemberId }),
  event('member_unbanned', 'A ban was lifted.', { room_id: RoomId, uid: MemberId }),
  event('role_changed', 'The owner made a member a moderator, or a moderator a member.', { room_id: RoomId, uid: MemberId, role: Type.Enum(['moderator', 'member']) }),
  event('room_renamed', 'The room has a new name.', { room_id: RoomId, name: Type.String() }),
  event('room_described', 'The room has a new description.', { room_id: RoomId, description: Type.String() }),
  event('room_deleted', 'The owner deleted the room; its messages are gone.', { room_id: RoomId, name: Type.String({ description: 'Its last name.' }) }),
  // Presence and keys: told to the friends of `ruid`.
  event('presence', '`ruid` came online or went offline.', {
    online: Type.Boolean(),
    last_seen: Type.Union([UnixSeconds('Their last poll.'), Type.Null()], { description: 'Null: never seen.' }),
  }),
  event('key_changed', '`ruid` published or withdrew a public key: fetch their keys again before encrypting.', {
    key_id: Type.String(),
    action: Type.Enum(['published', 'deleted']),
  }),
  // Calls: told to the other party.
  event('call_request', '`ruid` is calling you: answer with accept_call or reject_call.', { call_id: CallId, offer: Opaque('The SDP offer, or null.') }),
  event('call_accepted', 'The callee answered your call.', {
    call_id: CallId,
    answer: Opaque('The SDP answer, or null.'),
    ice_servers: Type.Array(IceServer, { description: 'STUN/TURN servers (ICE_SERVERS).' }),
  }),
  event('call_rejected', 'The callee declined your call.', { call_id: CallId, reason: Type.Literal('rejected') }),
  event('call_ended', 'The other side hung up, or a party went offline.', { call_id: CallId, reason: Type.Enum(['hangup', 'disconnected']) }),
  event('call_timeout', 'The call rang CALL_RING_SECONDS unanswered.', { call_id: CallId, reason: Type.Literal('timeout') }),
  event('call_busy', 'Your call could not ring: one of you is in a call.', { call_id: CallId }),
  event('call_offline', 'Your call could not ring: the callee has no live poll.', { call_id: CallId }),
  event('call_missed', '`ruid` called while you were offline.', { call_id: CallId }),
  event('call_signal', 'An offer, answer or ICE candidate from the other party.', { call_id: CallId, payload: Opaque('What the other party sent.') }),
] as const

const union = Type.Union([...EVENTS])

/** An item of `events_array`: one of the catalogue's events, told apart by `type`. */
export const Event = Type.Unsafe<Static<typeof union>>({
  $id: 'Event',
  description: 'An event of the log; `type` says which, and with it the payload fields.',
  oneOf: [...EVENTS],
  discriminator: {
    propertyName: 'type',
    mapping: Object.fromEntries(EVENTS.map((schema) => [schema.properties.type.const, `#/components/schemas/${schemaName(schema.properties.type.const)}`])),
  },
})
export type Event = Static<typeof Event>
export type EventType = Event['type']

/** The payload of one type of event: its fields beyond the envelope. */
export type PayloadOf<T extends EventType> = Omit<Extract<Event, { type: T }>, EnvelopeKey>

/** What a writer appends: a catalogued type, who caused it, and its payload. */
export type NewEvent = {
  [T in EventType]: { type: T; actorId: number } & (keyof PayloadOf<T> extends never ? { payload?: undefined } : { payload: PayloadOf<T> })
}[EventType]
