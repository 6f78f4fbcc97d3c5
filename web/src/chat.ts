// The signed-in screen: contacts and requests, the conversation list with unread counts,
// the open conversation (history that loads when scrolled back, replies, reactions, typing,
// read receipts, files) and the long-poll that keeps all of it live.
//
// Exactly once on screen: the long-poll's cursor (saved after every update) never hands a
// message out twice, and messages are kept by msg_id, so the overlap between a history page
// and the poll after a reload or a reconnect shows each message once.
import { ApiError, type Client, type Update } from '../../sdk/src/index.js'
import { byId, fill, h, UNREACHABLE } from './dom.js'
import { renderMessage, type MessageActions, type ShownMessage, type ShownReaction } from './message-view.js'
import { disableNotifications, enableNotifications, notificationsOffered } from './push.js'
import { saveSession, type SavedSession } from './session.js'

type Key = string
type Target = { to_uid: number } | { room_id: number }

interface Conversation {
  key: Key
  title: string
  target: Target
  unread: number
  /** The newest msg_id the unread count already includes (a poll replaying it adds nothing). */
  latest: number
}

/** A contact's status as I see it (the protocol's numbers). */
const CONTACT = { outgoing: 0, friends: 1, denied: 2, incoming: 3 } as const

interface Contact {
  uid: number
  login: string
  status: number
}

/** Messages per history page; older pages load when the log is scrolled to the top. */
const HISTORY_PAGE = 30
/** Dialogs per get_dialogs page (the most it allows). */
const DIALOGS_PAGE = 100
/** Typing notices go out at most this often while the user types. */
const TYPING_EVERY_MS = 3000
/** A typing notice shows this long unless renewed (the server's TYPING_SECONDS is the same order). */
const TYPING_SHOWN_MS = 6000

const keyOf = (target: Target): Key => ('room_id' in target ? `r${target.room_id}` : `u${target.to_uid}`)

/** The fields history and the long-poll share, as the page keeps them. */
function shown(message: {
  msg_id: number
  sender_uid: number
  sender_login: string
  time: number
  text: string
  edited_at?: number | null
  file?: { file_id: number; name: string; size: number } | null
  reply_to?: { msg_id: number; sender_login: string; preview?: string | null; deleted?: boolean } | null
  reactions?: ShownReaction[]
  read_by?: number
}): ShownMessage {
  return {
    msg_id: message.msg_id,
    sender_uid: message.sender_uid,
    sender_login: message.sender_login,
    time: message.time,
    text: message.text,
    edited: Boolean(message.edited_at),
    file: message.file ? { file_id: message.file.file_id, name: message.file.name, size: message.file.size } : undefined,
    reply_to: message.reply_to
      ? { msg_id: message.reply_to.msg_id, sender_login: message.reply_to.sender_login, preview: message.reply_to.preview ?? null, deleted: Boolean(message.reply_to.deleted) }
      : undefined,
    reactions: message.reactions ?? [],
    read_by: message.read_by ?? 0,
  }
}

export class Chat {
  private readonly conversations = new Map<Key, Conversation>()
  private contacts: Contact[] = []
  private open: Conversation | undefined
  /** The open conversation's messages by msg_id, and whether older ones remain. */
  private messages = new Map<number, ShownMessage>()
  private hasOlder = false
  private loadingOlder = false
  private replyTo: ShownMessage | undefined
  private readonly typing = new Map<Key, { login: string; timer: ReturnType<typeof setTimeout> }>()
  private lastTypingSent = 0
  private readonly stopped = new AbortController()

  private readonly list = h('ul', { class: 'conversations', 'aria-label': 'Conversations' })
  private readonly requests = h('ul', { class: 'requests', 'aria-label': 'Contact requests' })
  private readonly notice = h('p', { role: 'status', class: 'status' })
  private readonly main = h('section', { class: 'conversation', 'aria-label': 'Conversation' })

  constructor(
    private readonly root: HTMLElement,
    private readonly client: Client,
    private readonly session: SavedSession,
    private readonly signedOut: () => void,
  ) {}

  async start(): Promise<void> {
    this.renderFrame()
    await this.refresh()
    void this.listen()
    const wanted = this.conversations.get(location.hash.slice(1))
    if (wanted) await this.openConversation(wanted)
    else byId('add-contact').focus()
  }

  /** Ends the long-poll and the timers: on sign-out, or when the session is refused. */
  stop(): void {
    this.stopped.abort()
    for (const { timer } of this.typing.values()) clearTimeout(timer)
  }

  // -------------------------------------------------------------------------------------
  // Frame and sidebar

  private renderFrame(): void {
    const addContact = h('input', { id: 'add-contact', name: 'add-contact', autocomplete: 'off', required: true, maxlength: 64 })
    const roomName = h('input', { id: 'room-name', name: 'room-name', autocomplete: 'off', required: true, maxlength: 64 })
    fill(
      this.root,
      h(
        'aside',
        { class: 'sidebar' },
        h('header', {}, h('span', { class: 'me' }, this.session.login), h('button', { type: 'button', class: 'secondary', onclick: () => void this.signOut() }, 'Sign out')),
        notificationsOffered() && this.notificationsForm(),
        h(
          'form',
          { class: 'inline', onsubmit: (event: Event) => (event.preventDefault(), void this.requestContact(addContact)) },
          h('label', { for: 'add-contact' }, 'Add contact'),
          h('div', { class: 'row' }, addContact, h('button', { type: 'submit' }, 'Add')),
        ),
        this.notice,
        h('h2', {}, 'Requests'),
        this.requests,
        h('h2', {}, 'Chats'),
        this.list,
        h(
          'form',
          { class: 'inline', onsubmit: (event: Event) => (event.preventDefault(), void this.createRoom(roomName)) },
          h('label', { for: 'room-name' }, 'Room name'),
          h('div', { class: 'row' }, roomName, h('button', { type: 'submit' }, 'Create room')),
        ),
      ),
      this.main,
    )
    fill(this.main, h('p', { class: 'empty' }, 'Choose a chat, or add a contact to start one.'))
  }

  private say(text: string): void {
    this.notice.textContent = text
  }

  /** Every dialog, page by page. */
  private async allDialogs() {
    const dialogs = []
    for (let offset = 0; ; offset += DIALOGS_PAGE) {
      const page = await this.client.get_dialogs({ offset, count: DIALOGS_PAGE })
      dialogs.push(...page.dialogs)
      if (page.dialogs.length < DIALOGS_PAGE || dialogs.length >= page.total) return dialogs
    }
  }

  /** Contacts, rooms and dialogs (with their unread counts), from the server. */
  private async refresh(): Promise<void> {
    const [data, rooms, dialogs] = await Promise.all([this.client.get_data({}), this.client.my_rooms({}), this.allDialogs()])
    this.contacts = (data.contacts ?? []).map((c) => ({ uid: c.friend_uid, login: c.friend_login, status: c.status }))
    const seen = new Set<Key>()
    const upsert = (target: Target, title: string) => {
      const key = keyOf(target)
      seen.add(key)
      const known = this.conversations.get(key)
      if (known) known.title = title
      else this.conversations.set(key, { key, title, target, unread: 0, latest: 0 })
    }
    for (const contact of this.contacts) if (contact.status === CONTACT.friends) upsert({ to_uid: contact.uid }, contact.login)
    for (const room of rooms.rooms) upsert({ room_id: room.room_id }, room.name)
    for (const dialog of dialogs) {
      const target: Target | undefined = dialog.room_id ? { room_id: dialog.room_id } : dialog.to_uid ? { to_uid: dialog.to_uid } : undefined
      const conversation = target && this.conversations.get(keyOf(target))
      if (!conversation || !seen.has(conversation.key)) continue
      const latest = dialog.last_message?.msg_id ?? 0
      // A count older than what the poll already told is stale: keep the newer one.
      if (latest >= conversation.latest) {
        conversation.unread = conversation === this.open ? 0 : dialog.unread
        conversation.latest = latest
      }
    }
    for (const key of [...this.conversations.keys()]) if (!seen.has(key)) this.conversations.delete(key)
    if (this.open && !this.conversations.has(this.open.key)) this.closeConversation()
    this.renderSidebar()
  }

  private renderSidebar(): void {
    fill(
      this.requests,
      this.contacts
        .filter((c) => c.status === CONTACT.incoming || c.status === CONTACT.outgoing)
        .map((contact) =>
          contact.status === CONTACT.incoming
            ? h(
                'li',
                { 'aria-label': contact.login },
                h('span', {}, contact.login),
                h('button', { type: 'button', onclick: () => void this.answerRequest(contact, CONTACT.friends) }, 'Accept'),
                h('button', { type: 'button', class: 'secondary', onclick: () => void this.answerRequest(contact, CONTACT.denied) }, 'Decline'),
              )
            : h('li', { 'aria-label': contact.login, class: 'muted' }, `${contact.login}: waiting for an answer`),
        ),
    )
    const ordered = [...this.conversations.values()].sort((a, b) => b.unread - a.unread || a.title.localeCompare(b.title))
    fill(
      this.list,
      ordered.map((conversation) =>
        h(
          'li',
          { 'aria-label': conversation.title },
          h(
            'button',
            { type: 'button', class: 'conversation-item', 'aria-current': conversation.key === this.open?.key ? 'true' : false, onclick: () => void this.attempt(() => this.openConversation(conversation)) },
            h('span', {}, 'room_id' in conversation.target ? `# ${conversation.title}` : conversation.title),
            conversation.unread > 0 && [h('span', { class: 'badge', 'aria-hidden': 'true' }, conversation.unread), h('span', { class: 'visually-hidden' }, `${conversation.unread} unread`)],
          ),
        ),
      ),
    )
  }

  private async requestContact(input: HTMLInputElement): Promise<void> {
    const login = input.value.trim()
    if (!login) return
    await this.attempt(async () => {
      await this.client.add_contact_request({ login })
      input.value = ''
      this.say(`Request sent to ${login}.`)
      await this.refresh()
    })
  }

  private async answerRequest(contact: Contact, status: typeof CONTACT.friends | typeof CONTACT.denied): Promise<void> {
    await this.attempt(async () => {
      await this.client.add_contact_reply({ contact_uid: contact.uid, status })
      this.say(status === CONTACT.friends ? `${contact.login} is now a contact.` : `Declined ${contact.login}.`)
      await this.refresh()
    })
  }

  private async createRoom(input: HTMLInputElement): Promise<void> {
    const name = input.value.trim()
    if (!name) return
    await this.attempt(async () => {
      const { room } = await this.client.create_room({ name, type: 'private' })
      input.value = ''
      await this.refresh()
      const created = this.conversations.get(keyOf({ room_id: room.room_id }))
      if (created) await this.openConversation(created)
    })
  }

  private notificationsForm(): HTMLElement {
    const withText = h('input', { id: 'push-text', type: 'checkbox' })
    return h(
      'div',
      { class: 'notifications' },
      h('button', { type: 'button', class: 'link', onclick: async () => this.say(await enableNotifications(this.client, withText.checked)) }, 'Enable notifications'),
      h('label', { class: 'muted' }, withText, ' with message text'),
    )
  }

  /** Runs a command; a refused one is explained in the status line, a lost session signs out. */
  private async attempt(action: () => Promise<void>): Promise<void> {
    try {
      await action()
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return this.sessionEnded()
      this.say(error instanceof ApiError ? error.message : UNREACHABLE)
    }
  }

  private async signOut(): Promise<void> {
    // This browser's pushes were for this user: the next one to sign in must not get them.
    await disableNotifications(this.client)
    await this.client.logout({}).catch(() => undefined)
    this.sessionEnded()
  }

  private sessionEnded(): void {
    this.stop()
    this.signedOut()
  }

  // -------------------------------------------------------------------------------------
  // The open conversation

  private readonly log = h('div', { role: 'log', 'aria-label': 'Messages', class: 'log', tabindex: 0, onscroll: () => void this.attempt(() => this.maybeLoadOlder()) })
  private readonly typingLine = h('p', { class: 'typing', 'aria-live': 'polite' })
  private readonly replyLine = h('div', { class: 'replying' })
  private readonly messageBox = h('textarea', { id: 'message', name: 'message', rows: 2, maxlength: 4096, oninput: () => this.typed(), onkeydown: (event: KeyboardEvent) => this.composerKey(event) })
  private readonly fileInput = h('input', { id: 'attach', type: 'file', class: 'visually-hidden', onchange: () => void this.sendFile() })

  private readonly actions: MessageActions = {
    reply: (message) => {
      this.replyTo = message
      this.renderReplyLine()
      this.messageBox.focus()
    },
    toggleReaction: (message, emoji) => void this.toggleReaction(message, emoji),
    download: (file) => void this.download(file),
  }

  private async openConversation(conversation: Conversation): Promise<void> {
    this.open = conversation
    this.messages = new Map()
    this.replyTo = undefined
    conversation.unread = 0
    history.replaceState(null, '', `#${conversation.key}`)
    const invite = 'room_id' in conversation.target ? this.inviteForm(conversation.target.room_id) : undefined
    fill(
      this.main,
      h('header', { class: 'conversation-header' }, h('h2', {}, conversation.title), invite),
      this.log,
      this.typingLine,
      this.replyLine,
      h(
        'form',
        { class: 'composer', onsubmit: (event: Event) => (event.preventDefault(), void this.send()) },
        h('label', { for: 'message', class: 'visually-hidden' }, 'Message'),
        this.messageBox,
        this.fileInput,
        h('label', { for: 'attach', class: 'button secondary' }, 'Attach file'),
        h('button', { type: 'submit' }, 'Send'),
      ),
    )
    fill(this.log)
    this.renderReplyLine()
    this.renderTyping()
    this.renderSidebar()
    const page = await this.client.get_history({ ...conversation.target, count: HISTORY_PAGE })
    if (this.open !== conversation) return
    this.hasOlder = page.has_more
    this.addMessages(page.messages.map(shown))
    this.log.scrollTop = this.log.scrollHeight
    await this.markRead()
    this.messageBox.focus()
  }

  private closeConversation(): void {
    this.open = undefined
    fill(this.main, h('p', { class: 'empty' }, 'Choose a chat, or add a contact to start one.'))
  }

  private inviteForm(roomId: number): HTMLElement {
    const friends = this.contacts.filter((c) => c.status === CONTACT.friends)
    const select = h('select', { id: 'invite', 'aria-label': 'Contact to invite' }, friends.map((c) => h('option', { value: c.uid }, c.login)))
    return h(
      'form',
      { class: 'row', onsubmit: (event: Event) => (event.preventDefault(), void this.attempt(async () => {
        const friend = friends.find((c) => c.uid === Number(select.value))
        if (!friend) return
        await this.client.invite_to_room({ room_id: roomId, uid: friend.uid })
        this.say(`${friend.login} was invited.`)
      })) },
      select,
      h('button', { type: 'submit', class: 'secondary', disabled: friends.length === 0 }, 'Invite'),
    )
  }

  /** Adds messages (any order, any overlap with those shown) and keeps the log in msg_id order. */
  private addMessages(messages: ShownMessage[]): void {
    for (const message of messages) {
      const known = this.messages.get(message.msg_id)
      if (known) continue
      this.messages.set(message.msg_id, message)
      const element = this.renderOne(message)
      const after = [...this.log.children].find((child) => Number((child as HTMLElement).dataset.msgId) > message.msg_id)
      this.log.insertBefore(element, after ?? null)
    }
  }

  private renderOne(message: ShownMessage): HTMLElement {
    return renderMessage(message, this.session.uid, Boolean(this.open && 'room_id' in this.open.target), this.actions)
  }

  private rerender(message: ShownMessage): void {
    const element = this.log.querySelector(`[data-msg-id="${message.msg_id}"]`)
    element?.replaceWith(this.renderOne(message))
  }

  private async maybeLoadOlder(): Promise<void> {
    if (!this.open || !this.hasOlder || this.loadingOlder || this.log.scrollTop > 40) return
    const conversation = this.open
    const oldest = Math.min(...this.messages.keys())
    this.loadingOlder = true
    // Older messages are not news: a screen reader should not read them out as they arrive.
    this.log.setAttribute('aria-busy', 'true')
    try {
      const page = await this.client.get_history({ ...conversation.target, before: oldest, count: HISTORY_PAGE })
      if (this.open !== conversation) return
      const from = this.log.scrollHeight - this.log.scrollTop
      this.hasOlder = page.has_more
      this.addMessages(page.messages.map(shown))
      this.log.scrollTop = this.log.scrollHeight - from
    } finally {
      this.loadingOlder = false
      this.log.removeAttribute('aria-busy')
    }
  }

  private async markRead(): Promise<void> {
    if (!this.open || document.visibilityState === 'hidden' || this.messages.size === 0) return
    const latest = Math.max(...this.messages.keys())
    await this.client.mark_read({ ...this.open.target, msg_id: latest }).catch(() => undefined)
  }

  private renderReplyLine(): void {
    const replyTo = this.replyTo
    fill(
      this.replyLine,
      replyTo &&
        h(
          'p',
          {},
          `Replying to ${replyTo.sender_login}: ${replyTo.text.slice(0, 80)} `,
          h('button', { type: 'button', class: 'link', onclick: () => ((this.replyTo = undefined), this.renderReplyLine()) }, 'Cancel reply'),
        ),
    )
  }

  private composerKey(event: KeyboardEvent): void {
    // Enter sends; Shift+Enter is a new line; Enter that ends an input method's composition is not a send.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault()
      void this.send()
    }
  }

  private typed(): void {
    const now = Date.now()
    if (!this.open || now - this.lastTypingSent < TYPING_EVERY_MS || this.messageBox.value === '') return
    this.lastTypingSent = now
    void this.client.typing(this.open.target).catch(() => undefined)
  }

  private async send(text = this.messageBox.value.trim(), file?: ShownMessage['file']): Promise<void> {
    const conversation = this.open
    if (!conversation || !text) return
    const replyTo = this.replyTo
    await this.attempt(async () => {
      const reply = await this.client.send_msg({
        ...conversation.target,
        msg: text,
        client_msg_id: crypto.randomUUID(),
        ...(file ? { file_id: file.file_id } : {}),
        ...(replyTo ? { reply_to: replyTo.msg_id } : {}),
      })
      if (!file) this.messageBox.value = ''
      this.replyTo = undefined
      this.renderReplyLine()
      this.lastTypingSent = 0
      if (this.open !== conversation) return
      // Rendered from what was sent; history carries the same msg_id, so it is not shown twice.
      const me = this.session
      const quoted = replyTo && { msg_id: replyTo.msg_id, sender_login: replyTo.sender_login, preview: replyTo.text, deleted: false }
      this.addMessages([{ msg_id: reply.msg_id, sender_uid: me.uid, sender_login: me.login, time: reply.time, text, edited: false, file, reply_to: quoted, reactions: [], read_by: 0 }])
      this.log.scrollTop = this.log.scrollHeight
    })
  }

  private async sendFile(): Promise<void> {
    const file = this.fileInput.files?.[0]
    this.fileInput.value = ''
    if (!file || !this.open) return
    await this.attempt(async () => {
      this.say(`Uploading ${file.name}…`)
      const uploaded = await this.client.uploadFile(file, { name: file.name, type: file.type || 'application/octet-stream' })
      await this.send(file.name, { file_id: uploaded.file_id, name: uploaded.name, size: uploaded.size })
      this.say(`Sent ${file.name}.`)
    })
  }

  private async download(file: NonNullable<ShownMessage['file']>): Promise<void> {
    await this.attempt(async () => {
      const response = await this.client.downloadFile(file.file_id)
      const url = URL.createObjectURL(await response.blob())
      const link = h('a', { href: url, download: file.name, class: 'visually-hidden' })
      document.body.append(link)
      link.click()
      link.remove()
      setTimeout(() => URL.revokeObjectURL(url), 10_000)
    })
  }

  private async toggleReaction(message: ShownMessage, emoji: string): Promise<void> {
    const mine = message.reactions.some((r) => r.emoji === emoji && r.mine)
    await this.attempt(async () => {
      const reply = mine ? await this.client.unreact({ msg_id: message.msg_id, emoji }) : await this.client.react({ msg_id: message.msg_id, emoji })
      message.reactions = reply.reactions
      this.rerender(message)
    })
  }

  private async reloadReactions(msgId: number): Promise<void> {
    const conversation = this.open
    if (!conversation) return
    const page = await this.client.get_history({ ...conversation.target, after: msgId - 1, count: 1 }).catch(() => undefined)
    const fresh = page?.messages.find((m) => m.msg_id === msgId)
    const message = this.messages.get(msgId)
    if (!fresh || !message || this.open !== conversation) return
    message.reactions = fresh.reactions ?? []
    this.rerender(message)
  }

  private renderTyping(): void {
    const who = this.open && this.typing.get(this.open.key)
    this.typingLine.textContent = who ? `${who.login} is typing…` : ''
  }

  // -------------------------------------------------------------------------------------
  // Live updates

  private async listen(): Promise<void> {
    const updates = this.client.updates({ cursor: this.session.cursor, signal: this.stopped.signal })
    try {
      for await (const update of updates) {
        this.apply(update)
        this.session.cursor = update.cursor
        saveSession(this.session)
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.sessionEnded()
      else this.say(error instanceof ApiError ? error.message : 'Live updates stopped; reload the page.')
    }
  }

  private apply(update: Update): void {
    if (update.kind === 'message') this.received(update.message)
    else if (update.kind === 'typing') this.someoneTyping(update.typing)
    else this.happened(update.event)
  }

  private received(polled: Extract<Update, { kind: 'message' }>['message']): void {
    const target: Target | undefined = polled.room_id ? { room_id: polled.room_id } : polled.sender_uid !== this.session.uid ? { to_uid: polled.sender_uid } : undefined
    if (!target) return // my own direct message from another device: its chat shows it from history
    const key = keyOf(target)
    this.stopTyping(key)
    let conversation = this.conversations.get(key)
    if (!conversation) {
      conversation = { key, title: polled.room_id ? `room ${polled.room_id}` : polled.sender_login, target, unread: 0, latest: 0 }
      this.conversations.set(key, conversation)
      void this.refresh().catch(() => undefined)
    }
    if (conversation === this.open) {
      const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 60
      this.addMessages([shown(polled)])
      if (atBottom) this.log.scrollTop = this.log.scrollHeight
      void this.markRead()
    } else if (polled.sender_uid !== this.session.uid && polled.msg_id > conversation.latest) {
      // After a reload the poll replays what get_dialogs already counted: count it once.
      conversation.unread++
    }
    conversation.latest = Math.max(conversation.latest, polled.msg_id)
    this.renderSidebar()
  }

  private happened(event: Extract<Update, { kind: 'event' }>['event']): void {
    switch (event.type) {
      case 'contact_request':
      case 'contact_accepted':
      case 'contact_denied':
      case 'contact_cancelled':
      case 'contact_deleted':
      case 'member_joined':
      case 'member_left':
      case 'member_kicked':
      case 'member_banned':
      case 'room_renamed':
      case 'room_deleted':
      case 'role_changed':
        void this.refresh().catch(() => undefined)
        return
      case 'messages_read': {
        // My messages in the direct chat with the reader, up to the marker, are read.
        if (this.open?.key !== keyOf({ to_uid: event.ruid })) return
        for (const message of this.messages.values()) {
          if (message.sender_uid === this.session.uid && message.msg_id <= event.through_msg_id && message.read_by === 0) {
            message.read_by = 1
            this.rerender(message)
          }
        }
        return
      }
      case 'reaction':
        // Read the counts again rather than add to them: after a reload the poll replays
        // changes the history page already counted.
        if (this.messages.has(event.msg_id)) void this.reloadReactions(event.msg_id)
        return
      case 'message_edited': {
        const message = this.messages.get(event.msg_id)
        if (!message) return
        message.text = event.msg
        message.edited = true
        this.rerender(message)
        return
      }
      case 'message_deleted': {
        if (!this.messages.delete(event.msg_id)) return
        this.log.querySelector(`[data-msg-id="${event.msg_id}"]`)?.remove()
        return
      }
      default:
        return
    }
  }

  private someoneTyping(notices: Extract<Update, { kind: 'typing' }>['typing']): void {
    for (const notice of notices) {
      if (notice.uid === this.session.uid) continue
      const key = keyOf(notice.room_id ? { room_id: notice.room_id } : { to_uid: notice.uid })
      this.stopTyping(key)
      this.typing.set(key, { login: notice.login, timer: setTimeout(() => this.stopTyping(key), TYPING_SHOWN_MS) })
    }
    this.renderTyping()
  }

  private stopTyping(key: Key): void {
    const shownNotice = this.typing.get(key)
    if (!shownNotice) return
    clearTimeout(shownNotice.timer)
    this.typing.delete(key)
    this.renderTyping()
  }
}

