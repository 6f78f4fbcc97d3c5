// One message in the open conversation's log: who and when, the text, what it replies to,
// its file, its reactions, and for my own messages whether they were read.
import { h } from './dom.js'

export interface ShownReaction {
  emoji: string
  count: number
  mine: boolean
}

/** A message as the page keeps it, from history or from the long-poll. */
export interface ShownMessage {
  msg_id: number
  sender_uid: number
  sender_login: string
  time: number
  text: string
  edited: boolean
  file?: { file_id: number; name: string; size: number }
  reply_to?: { msg_id: number; sender_login: string; preview: string | null; deleted: boolean }
  reactions: ShownReaction[]
  /** How many others read it (0 or 1 in a direct chat). */
  read_by: number
}

export interface MessageActions {
  reply(message: ShownMessage): void
  toggleReaction(message: ShownMessage, emoji: string): void
  download(file: NonNullable<ShownMessage['file']>): void
}

/** The quick reactions offered under each message. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂']

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

export function renderMessage(message: ShownMessage, myUid: number, inRoom: boolean, actions: MessageActions): HTMLElement {
  const mine = message.sender_uid === myUid
  const reactions = QUICK_REACTIONS.filter((emoji) => !message.reactions.some((r) => r.emoji === emoji)).map((emoji) => ({ emoji, count: 0, mine: false }))
  const receipt = mine ? (message.read_by > 0 ? (inRoom ? `Read by ${message.read_by}` : 'Read') : 'Sent') : undefined
  return h(
    'article',
    { class: mine ? 'message mine' : 'message', 'data-msg-id': message.msg_id, 'aria-label': `${message.sender_login}: ${message.text}` },
    h('header', {}, h('strong', {}, message.sender_login), ' ', h('time', { datetime: new Date(message.time * 1000).toISOString() }, timeFormat.format(message.time * 1000)), message.edited && h('span', { class: 'muted' }, ' (edited)')),
    message.reply_to &&
      h('blockquote', { class: 'reply-preview' }, message.reply_to.deleted ? 'Original message deleted' : `${message.reply_to.sender_login}: ${message.reply_to.preview ?? ''}`),
    h('p', { class: 'text' }, message.text),
    message.file &&
      h('button', { type: 'button', class: 'file', onclick: () => actions.download(message.file!) }, `Download ${message.file.name}`, h('span', { class: 'muted' }, ` (${sizeText(message.file.size)})`)),
    h(
      'footer',
      {},
      [...message.reactions, ...reactions].map((reaction) =>
        h(
          'button',
          { type: 'button', class: 'reaction', 'aria-pressed': String(reaction.mine), 'aria-label': `React ${reaction.emoji}${reaction.count ? ` (${reaction.count})` : ''}`, onclick: () => actions.toggleReaction(message, reaction.emoji) },
          reaction.emoji,
          reaction.count > 0 && ` ${reaction.count}`,
        ),
      ),
      h('button', { type: 'button', class: 'link', onclick: () => actions.reply(message) }, 'Reply'),
      receipt && h('span', { class: 'receipt' }, receipt),
    ),
  )
}
