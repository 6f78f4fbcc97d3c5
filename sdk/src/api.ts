// Generated from openapi/openapi.json by openapi-typescript: do not edit.
// Regenerate with `npm run openapi` at the repository's root.

export interface paths {
    "/authorization": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Log in: open a session
         * @description By `login` or by `email`. Returns the session (send `token` as a bearer token, or echo the whole `session` object in the body) and the current end of the event log. Wrong login, unknown e-mail and wrong password get one and the same 401. After LOGIN_MAX_FAILURES failures within LOGIN_FAILURE_WINDOW_SECONDS the account answers 429 with Retry-After. 403 `email_unverified` while the account waits for its e-mail code.
         */
        post: operations["authorization"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/registration": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create an account
         * @description Logins are unique regardless of case (409 `login_taken`), e-mail addresses too (409 `email_taken`). With REQUIRE_EMAIL_VERIFICATION, `email` is required, a 6-digit code is mailed to it and `authorization` answers 403 `email_unverified` until `verify`.
         */
        post: operations["registration"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/resend_code": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Mail a new verification code
         * @description Replaces the pending code. At most one mail per EMAIL_RESEND_INTERVAL_SECONDS (60) and EMAIL_MAX_SENDS_PER_HOUR (5) per hour for an account, else 429 with Retry-After. Answers `{}` for unknown or already verified accounts too.
         */
        post: operations["resend_code"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Confirm an e-mail address with the mailed code
         * @description Codes expire after EMAIL_CODE_TTL_SECONDS (600), work once, and die after EMAIL_CODE_MAX_ATTEMPTS (5) wrong tries. Errors: 400 `invalid_code`, `code_expired`, `too_many_attempts` (then ask for a new code with `resend_code`).
         */
        post: operations["verify"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/change_password": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Change my password
         * @description Needs the current password (401 when wrong). Every other session ends; this one stays.
         */
        post: operations["change_password"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/list_sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** My live sessions */
        post: operations["list_sessions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/logout": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Log out: revoke this session
         * @description The token is refused from then on by every server process; held polls of the session end with 401.
         */
        post: operations["logout"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/logout_all": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * End all my sessions
         * @description All of them, this one included unless `keep_current`.
         */
        post: operations["logout_all"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/logout_session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * End one of my sessions
         * @description 404 when you have no such live session.
         */
        post: operations["logout_session"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/renew_token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * A new token for this session
         * @description The session now lives SESSION_TTL_SECONDS from now; the old token keeps working until it expires or the session ends.
         */
        post: operations["renew_token"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/add_contact_reply": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Accept or deny a contact request, or cancel your own
         * @description Status 1 accepts and 2 denies an incoming request; 3 withdraws your outgoing one. The other side gets an event.
         */
        post: operations["add_contact_reply"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/add_contact_request": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Ask a user to become a contact
         * @description Asking someone who already asked you makes you friends (status 1). Asking again after a denial is allowed. The other side gets a `contact_request` (or `contact_accepted`) event.
         */
        post: operations["add_contact_request"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/block_user": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Block a user
         * @description They can no longer send you contact requests or direct messages, call you, invite you to rooms or see your presence (nor you theirs), and they cannot tell: each attempt gets the answer anyone else would get (a message or a call: 403 `not_friends`; a request or an invitation: as if sent) and reaches nobody. History stays. Blocking twice is blocking once.
         */
        post: operations["block_user"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/del_contact": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Remove a contact for both sides
         * @description The other side gets a `contact_deleted` event.
         */
        post: operations["del_contact"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_data": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** My contact list */
        post: operations["get_data"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/list_blocked": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** The users I blocked */
        post: operations["list_blocked"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/unblock_user": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Unblock a user
         * @description What your contact status allows works again; what they tried while blocked is not delivered later.
         */
        post: operations["unblock_user"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/broadcast": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Send a message to every user (administrators)
         * @description Only for the logins in ADMIN_LOGINS (else 403). Every user who existed at the time gets it once through update_data, as a message of kind `broadcast`. With `client_msg_id`, a retry returns the first reply.
         */
        post: operations["broadcast"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/clear_history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Clear a conversation's history
         * @description A direct conversation: for you only (your other devices get `history_cleared`). A room: for every member, by the owner only.
         */
        post: operations["clear_history"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/delete_msg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Delete a message
         * @description Your own, or any message in a room you moderate or own. It never comes back in history or search; a `message_deleted` event goes to everyone who sees the conversation.
         */
        post: operations["delete_msg"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/edit_msg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Edit your message
         * @description Everyone who sees the conversation gets a `message_edited` event with the new text and `edited_at`.
         */
        post: operations["edit_msg"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/forward_msg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Forward a message
         * @description A message you can see (else 404), into a conversation where you may post, with the rules of `send_msg` (403 `not_friends`, 403 in a room you are not in or a channel you may not post to). The copy names who first sent it and when (`forwarded_from`); its file goes by reference and becomes downloadable by the new conversation.
         */
        post: operations["forward_msg"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_dialogs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * My conversations
         * @description Direct conversations and rooms, newest activity first, each with its last message and unread count.
         */
        post: operations["get_dialogs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * A page of a conversation's history
         * @description Oldest first. Page back with `before` = the first msg_id of the page, forward with `after` = the last one: message ids grow in commit order within a conversation, so pages never skip or repeat a message, even while new ones arrive.
         */
        post: operations["get_history"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_pins": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The pinned messages of a conversation
         * @description The latest pinned first, as your history shows them (deleted and cleared messages left out).
         */
        post: operations["get_pins"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_thread": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The replies to a message
         * @description A message you can see (else 404) and the replies to it that your history shows, oldest first, a page at a time (`after`).
         */
        post: operations["get_thread"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/mark_read": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Mark a conversation read up to a message
         * @description The marker only moves forward. Answers how many messages are still unread.
         */
        post: operations["mark_read"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/pin_msg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Pin a message in its conversation
         * @description A message you can see (else 404): in a room, moderators and the owner (else 403); in a direct chat, either side. At most MAX_PINS_PER_CONVERSATION pins (409 `invalid_state` beyond). Pinning again changes nothing; each change is a `message_pinned` event to everyone in the conversation.
         */
        post: operations["pin_msg"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/react": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * React to a message with an emoji
         * @description To a message you can see (as history shows it to you; anything else is 404). At most one of each emoji per user per message: reacting again changes nothing. Everyone who sees the conversation gets a `reaction` event for each change.
         */
        post: operations["react"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/search_msgs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Search a conversation by words
         * @description Every word must match a word of the message or its beginning, regardless of case (a PostgreSQL full-text index). Newest first; page with `before`.
         */
        post: operations["search_msgs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/send_msg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Send a message to a contact or a room
         * @description To an accepted contact (`to_uid`, else 403 `not_friends`) or to a room you are a member of (`room_id`, else 403). Text of 1 to MAX_MESSAGE_CHARS (4096) characters. With `client_msg_id`, a retry returns the first reply and stores nothing new.
         */
        post: operations["send_msg"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/set_read_receipts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Share read receipts, or keep them private
         * @description On (the default): the other side of a direct chat gets a `messages_read` event when you mark their messages read, and history counts you in `read_by`. Off: neither, as Telegram and Matrix private receipts; your own unread counts work as before.
         */
        post: operations["set_read_receipts"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/typing": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Say you are typing
         * @description The other side of a direct chat (an accepted contact, else 403 `not_friends`) or the members of a room (where you may post) see it in their held `update_data` polls (`typing`) within a second, on any server process, for TYPING_SECONDS (6) unless renewed. Ephemeral: never stored, never unread, it moves no cursor; a poll that starts after it expired never sees it. At most TYPING_PER_MINUTE (60) per user (429).
         */
        post: operations["typing"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/unpin_msg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Unpin a message
         * @description Who may pin may unpin. Each change is a `message_unpinned` event to everyone in the conversation.
         */
        post: operations["unpin_msg"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/unreact": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Take back your emoji reaction
         * @description Removing a reaction you did not make changes nothing. Everyone who sees the conversation gets a `reaction` event (`added: false`) for each change.
         */
        post: operations["unreact"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/update_data": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Long-poll for new messages and events
         * @description Answers at once when anything is pending after the position, else holds the request until something arrives or `timeout` seconds pass (default 25, at most 60). With `cursor`: the entries after it; poll again with the reply's cursor to never miss or repeat one. Without `cursor`: the server keeps the position and moves it once a reply was written out in full. At most POLL_BATCH_LIMIT (100) items per reply.
         */
        post: operations["update_data"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/ban_member": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Ban a user from a room (owner, moderators)
         * @description At once: they leave, cannot rejoin, read or send, and get no more of the room's events. Every member and the banned user get `member_banned`. Moderators cannot ban moderators or the owner.
         */
        post: operations["ban_member"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/create_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create a room
         * @description You become its owner. `public` rooms can be found and joined by anyone; `private` ones by invitation.
         */
        post: operations["create_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/delete_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Delete a room (owner)
         * @description Every member gets `room_deleted`; its messages are gone.
         */
        post: operations["delete_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/describe_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Change a room's description (owner, moderators)
         * @description Every member gets `room_described`.
         */
        post: operations["describe_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/invite_to_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Add a user to a room (owner, moderators)
         * @description The user becomes a member; every member, the new one included, gets `member_joined`.
         */
        post: operations["invite_to_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/join_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Join a public room
         * @description Every member gets `member_joined`. Banned users are refused (403), and so are private rooms.
         */
        post: operations["join_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/kick_member": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Remove a member from a room (owner, moderators)
         * @description They may rejoin a public room. Every member and the removed user get `member_kicked`.
         */
        post: operations["kick_member"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/leave_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Leave a room
         * @description Every member and you get `member_left`. The owner cannot leave (409): delete the room instead.
         */
        post: operations["leave_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/member_info": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** One member of a room (members only) */
        post: operations["member_info"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/my_rooms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** The rooms I am a member of */
        post: operations["my_rooms"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/rename_room": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Rename a room (owner, moderators)
         * @description Every member gets `room_renamed`.
         */
        post: operations["rename_room"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/room_members": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A room's members with their roles (members only) */
        post: operations["room_members"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/search_rooms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Find public rooms by name prefix
         * @description Case-insensitive; ordered by name; paged with offset and count.
         */
        post: operations["search_rooms"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/set_role": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Make a member a moderator, or a moderator a member (owner)
         * @description Every member gets `role_changed`.
         */
        post: operations["set_role"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/unban_member": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Lift a ban (owner, moderators)
         * @description The user may join (or be invited) again; every member and the user get `member_unbanned`.
         */
        post: operations["unban_member"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/list_users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The user directory
         * @description Pages of public profiles by user id, optionally only those whose login or display name starts with `query`.
         */
        post: operations["list_users"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/update_profile": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Change my display name or description
         * @description Fields left out stay as they are; an empty string clears one.
         */
        post: operations["update_profile"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/whoami": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** My own profile */
        post: operations["whoami"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_presence": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Presence of my friends
         * @description Changes also arrive as `presence` events (`online`, `last_seen`) through update_data.
         */
        post: operations["get_presence"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/delete_key": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Withdraw one of my public keys
         * @description Friends get `key_changed` with `action: "deleted"`.
         */
        post: operations["delete_key"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The public keys of a friend (or mine)
         * @description 403 `not_friends` for anyone else.
         */
        post: operations["get_keys"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/publish_key": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Publish or replace one of my public keys
         * @description At most MAX_PUBLIC_KEYS (10) keys per user (409 `invalid_state` beyond). Friends get `key_changed` when it changed.
         */
        post: operations["publish_key"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accept_call": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Answer a ringing call
         * @description The caller gets `call_accepted` with the answer and the ICE servers. 409 when the call no longer rings.
         */
        post: operations["accept_call"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/call": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Call a friend
         * @description Rings the callee (`call_request` with the offer) for CALL_RING_SECONDS (30); then both get `call_timeout`. `status` says `busy` when either of you is in a call, `offline` when the callee has no live poll (the caller also gets `call_busy` / `call_offline`). 403 `not_friends` for anyone but a friend.
         */
        post: operations["call"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/call_signal": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Relay an offer, answer or ICE candidate
         * @description The other side gets `call_signal` with the payload, untouched.
         */
        post: operations["call_signal"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/hang_up": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * End a call, ringing or running
         * @description The other side gets `call_ended`.
         */
        post: operations["hang_up"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/reject_call": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Decline a ringing call
         * @description The caller gets `call_rejected`.
         */
        post: operations["reject_call"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_push_key": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The server's VAPID public key
         * @description The `applicationServerKey` for `pushManager.subscribe()`; the same on every process of the server, and kept across restarts.
         */
        post: operations["get_push_key"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/push_subscribe": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Take pushes in this browser while not polling
         * @description Send `PushSubscription.toJSON()`: `endpoint` and `keys`. A direct message, a mention in a room, or a call to you while you have no live poll then comes as a push, encrypted for this browser: JSON `{type: "message" | "mention" | "call", from_uid, from_login, room_id?, room_name?, msg_id?, call_id?, text?}`, with `text` (at most 200 characters) only if `include_text` is true. The subscription belongs to the session that makes it: pushed only while that session lives, deleted when it is revoked (logout, logout_session, logout_all, change_password). Subscribing the same endpoint again updates it and moves it to the calling session (another user's endpoint moves to you). At most MAX_PUSH_SUBSCRIPTIONS_PER_USER (10) per user, those of sessions that ended not counted: 409 `invalid_state` beyond. 400 when the endpoint is not a URL with a host (port, if any, 1 to 65535) or a key is not what a browser gives.
         */
        post: operations["push_subscribe"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/push_unsubscribe": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * No more pushes to this browser
         * @description Idempotent: an endpoint you have not subscribed (or no longer) answers `{}` too.
         */
        post: operations["push_unsubscribe"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Any command, wiki dialect
         * @description The envelope of the original desktop client: the command named in `request`, with the same body as POST /<command> (fields the command does not know are ignored). Errors are a bare JSON string; an empty contact list is `null`.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            /** @description The command's own body plus its name in `request`. */
            requestBody: {
                content: {
                    "application/json": {
                        /** @description The command: authorization, authorisation, registration, resend_code, verify, change_password, list_sessions, logout, logout_all, logout_session, renew_token, add_contact_reply, add_contact_request, block_user, del_contact, get_data, list_blocked, unblock_user, broadcast, clear_history, delete_msg, edit_msg, forward_msg, get_dialogs, get_history, get_pins, get_thread, mark_read, pin_msg, react, search_msgs, send_msg, set_read_receipts, typing, unpin_msg, unreact, update_data, ban_member, create_room, delete_room, describe_room, invite_to_room, join_room, kick_member, leave_room, member_info, my_rooms, rename_room, room_members, search_rooms, set_role, unban_member, list_users, update_profile, whoami, get_presence, delete_key, get_keys, publish_key, accept_call, call, call_signal, hang_up, reject_call, get_push_key, push_subscribe, push_unsubscribe */
                        request: string;
                    } & {
                        [key: string]: unknown;
                    };
                };
            };
            responses: {
                /** @description The command's reply. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": unknown;
                    };
                };
                /** @description The error message. */
                "4XX": {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": string;
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/get_user": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Look up a user by id */
        get: operations["get_user"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/upload_file": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Upload a file
         * @description The request body is the file (any Content-Type, recorded as its type), streamed to storage. At most MAX_FILE_BYTES (50 MiB by default): larger uploads are cut off with 413. Attach the upload with `send_msg` `file_id` within UPLOAD_TTL_SECONDS (a day) or it is removed.
         */
        post: operations["upload_file"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/files/{file_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download a file
         * @description For its uploader and whoever sees a message carrying it (else 404). Streams the file with its Content-Type, Content-Length and Content-Disposition; a `Range: bytes=a-b` header gets 206 with that part (416 outside the file). 410 `file_unavailable` when its content is missing or damaged on the server.
         */
        get: operations["download_file"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /**
         * @example {
         *       "type": "message",
         *       "from_uid": 1,
         *       "from_login": "alice",
         *       "msg_id": 1,
         *       "text": "hi bob"
         *     }
         */
        PushPayload: {
            /**
             * @description A direct message, a mention in a room, or a call that found you away.
             * @enum {unknown}
             */
            type: "message" | "mention" | "call";
            /** @description Who wrote or called. */
            from_uid: number;
            /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
            from_login: string;
            /** @description The room (a mention). */
            room_id?: number;
            /** @description The room (a mention). */
            room_name?: string;
            /** @description The message (a message or a mention). */
            msg_id?: number;
            /** @description The call. */
            call_id?: number;
            /** @description The message's text, when the subscription opted in; cut to 200 characters. */
            text?: string;
        };
        /** @description The session, echoed back: an alternative to the Authorization header. */
        SessionRef: {
            /** @description The user the session belongs to. */
            uid: number;
            /** @description The session id. */
            session_key: number;
            /** @description The same as uid, as `authorization` returns it. */
            contact_uid?: number;
            /** @description The bearer JWT. */
            token?: string;
        } & {
            [key: string]: unknown;
        };
        /** @description An open session: send `token` as a bearer token, or echo the whole object as `session`. */
        Session: {
            /** @description The user id. */
            uid: number;
            /** @description The same as uid (the wiki name for it). */
            contact_uid: number;
            /** @description The session id: a number, not a secret. */
            session_key: number;
            /** @description Bearer JWT: send as `Authorization: Bearer <token>` or inside `session`. */
            token: string;
        };
        /**
         * @description An error (modern dialect). The wiki dialect sends the message alone, as a JSON string.
         * @example {
         *       "error": "not_friends",
         *       "message": "You can only write to accepted contacts"
         *     }
         */
        Error: {
            /**
             * @description Stable error code.
             * @enum {unknown}
             */
            error: "bad_request" | "unauthorized" | "forbidden" | "not_friends" | "not_found" | "read_only_channel" | "login_taken" | "already_contact" | "invalid_state" | "email_taken" | "email_unverified" | "invalid_code" | "code_expired" | "too_many_attempts" | "payload_too_large" | "file_unavailable" | "range_not_satisfiable" | "busy" | "unsupported_media_type" | "rate_limited" | "internal_error" | "unavailable";
            /** @description Human-readable explanation. */
            message: string;
        };
        /** @description One of my live sessions. */
        SessionInfo: {
            /** @description The session id. */
            session_key: number;
            /** @description When it was opened. */
            created_at: number;
            /** @description When its token stops working unless renewed. */
            expires_at: number;
            /** @description The session of this request. */
            current: boolean;
        };
        /** @description A contact, with its status as I see it. */
        Contact: {
            friend_login: string;
            /** @description The contact's user id. */
            friend_uid: number;
            /** @description 0 outgoing, 1 friends, 2 denied, 3 incoming. */
            status: number;
        };
        /** @description A user you blocked. */
        BlockedUser: {
            /** @description The user. */
            uid: number;
            /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
            login: string;
            /** @description When you blocked them. */
            blocked_at: number;
        };
        /** @description A conversation in my list: with a user (`to_uid`) or a room (`room_id`). */
        Dialog: {
            /** @description The other user, for a direct conversation. */
            to_uid?: number;
            /** @description The room. */
            room_id?: number;
            /** @description The other user's login, or the room's name. */
            title: string;
            last_message: components["schemas"]["Message"] | null;
            unread: number;
            /** @description Unread room messages that mention you (0 in a direct conversation). */
            mentions: number;
            /** @description The newest message (or joining the room). */
            last_activity: number;
        };
        /** @description A message as history, search and dialogs show it. */
        Message: {
            /** @description The message id: grows in commit order within a conversation. */
            msg_id: number;
            /** @description Who sent it. */
            sender_uid: number;
            sender_login: string;
            /** @description When it was stored. */
            time: number;
            text: string;
            /**
             * @description `text`, `sticker` (msg is the sticker's short code), `file` (see `file`) or `broadcast` (an administrator's message to everyone).
             * @enum {unknown}
             */
            kind: "text" | "sticker" | "file" | "broadcast";
            room_id: number | null;
            to_uid: number | null;
            edited_at: number | null;
            ciphertext: string | null;
            file: components["schemas"]["File"] | null;
            /** @description Per emoji, the oldest first; empty when nobody reacted. */
            reactions: components["schemas"]["Reaction"][];
            /** @description For a reply: the message it answers. */
            reply_to: components["schemas"]["ReplyTo"] | null;
            /** @description For a forwarded copy: who first sent it, and when. */
            forwarded_from: components["schemas"]["ForwardedFrom"] | null;
            /** @description A room message that mentions you (`@your_login` or `@all`). */
            mentioned: boolean;
            /** @description Users other than its sender who read it and share read receipts: 0 or 1 in a direct chat, a count in a room. */
            read_by: number;
        };
        /**
         * @description An uploaded file, as messages carry it.
         * @example {
         *       "file_id": 1,
         *       "name": "photo.jpg",
         *       "size": 48213,
         *       "content_type": "image/jpeg",
         *       "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
         *     }
         */
        File: {
            /** @description Download with GET /files/{file_id}. */
            file_id: number;
            name: string;
            /** @description Bytes. */
            size: number;
            content_type: string;
            /** @description Hex SHA-256 of the content. */
            sha256: string;
        };
        /** @description The users who reacted to a message with one emoji. */
        Reaction: {
            /** @description The emoji. */
            emoji: string;
            /** @description How many users reacted with it. */
            count: number;
            /** @description Whether you are one of them. */
            mine: boolean;
        };
        /** @description The message a reply answers, as the reply shows it. */
        ReplyTo: {
            /** @description The message replied to. */
            msg_id: number;
            /** @description Who sent it. */
            sender_uid: number;
            sender_login: string;
            /** @description null once it was deleted. */
            preview: string | null;
            /** @description The original is gone: deleted since. */
            deleted: boolean;
        };
        /** @description For a forwarded copy: who first sent the message, and when. */
        ForwardedFrom: {
            /** @description Who first sent it. */
            uid: number;
            login: string;
            /** @description When they sent it. */
            time: number;
        };
        /** @description A pinned message of a conversation. */
        Pin: {
            message: components["schemas"]["Message"];
            /** @description Who pinned it. */
            pinned_by: number;
            /** @description When. */
            pinned_at: number;
        };
        /** @description A new message, as update_data delivers it in `msg_array`. */
        PolledMessage: {
            /** @description The message id. */
            msg_id: number;
            /** @description Who sent it. */
            sender_uid: number;
            sender_login: string;
            /** @description When it was stored. */
            time: number;
            text: string;
            /**
             * @description `text`, `sticker` (msg is the sticker's short code), `file` (see `file`) or `broadcast` (an administrator's message to everyone).
             * @enum {unknown}
             */
            kind?: "text" | "sticker" | "file" | "broadcast";
            /** @description Set for room messages. */
            room_id?: number;
            /** @description Set once the message was edited. */
            edited_at?: number;
            /** @description Your entry of the sender's `ciphertexts`, when it named you. */
            ciphertext?: string;
            file?: components["schemas"]["File"];
            reply_to?: components["schemas"]["ReplyTo"];
            forwarded_from?: components["schemas"]["ForwardedFrom"];
            /**
             * @description Set when the room message mentions you.
             * @enum {boolean}
             */
            mentioned?: true;
        };
        /** @description An event of the log; `type` says which, and with it the payload fields. */
        Event: components["schemas"]["ContactRequestEvent"] | components["schemas"]["ContactAcceptedEvent"] | components["schemas"]["ContactDeniedEvent"] | components["schemas"]["ContactCancelledEvent"] | components["schemas"]["ContactDeletedEvent"] | components["schemas"]["MessageEditedEvent"] | components["schemas"]["ReactionEvent"] | components["schemas"]["MessagePinnedEvent"] | components["schemas"]["MessageUnpinnedEvent"] | components["schemas"]["MessagesReadEvent"] | components["schemas"]["MessageDeletedEvent"] | components["schemas"]["HistoryClearedEvent"] | components["schemas"]["MemberJoinedEvent"] | components["schemas"]["MemberLeftEvent"] | components["schemas"]["MemberKickedEvent"] | components["schemas"]["MemberBannedEvent"] | components["schemas"]["MemberUnbannedEvent"] | components["schemas"]["RoleChangedEvent"] | components["schemas"]["RoomRenamedEvent"] | components["schemas"]["RoomDescribedEvent"] | components["schemas"]["RoomDeletedEvent"] | components["schemas"]["PresenceEvent"] | components["schemas"]["KeyChangedEvent"] | components["schemas"]["CallRequestEvent"] | components["schemas"]["CallAcceptedEvent"] | components["schemas"]["CallRejectedEvent"] | components["schemas"]["CallEndedEvent"] | components["schemas"]["CallTimeoutEvent"] | components["schemas"]["CallBusyEvent"] | components["schemas"]["CallOfflineEvent"] | components["schemas"]["CallMissedEvent"] | components["schemas"]["CallSignalEvent"];
        /** @description `ruid` asks you to become a contact. */
        ContactRequestEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "contact_request";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description As the caller sees the other side: 0 outgoing request, 1 friends, 2 denied, 3 incoming request. */
            status: number;
        };
        /** @description `ruid` accepted your request (or asked you back): you are friends. */
        ContactAcceptedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "contact_accepted";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description As the caller sees the other side: 0 outgoing request, 1 friends, 2 denied, 3 incoming request. */
            status: number;
        };
        /** @description `ruid` refused your request. */
        ContactDeniedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "contact_denied";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description As the caller sees the other side: 0 outgoing request, 1 friends, 2 denied, 3 incoming request. */
            status: number;
        };
        /** @description `ruid` withdrew the request they had sent you. */
        ContactCancelledEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "contact_cancelled";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
        };
        /** @description `ruid` removed you from their contacts (and they from yours). */
        ContactDeletedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "contact_deleted";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
        };
        /** @description A message you can see was edited. */
        MessageEditedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "message_edited";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The message. */
            msg_id: number;
            /** @description The new text. */
            msg: string;
            /** @description When it was edited. */
            edited_at: number;
            /** @description Set for room messages. */
            room_id?: number;
        };
        /** @description `ruid` added or removed an emoji reaction to a message you can see. */
        ReactionEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "reaction";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The message. */
            msg_id: number;
            /** @description The emoji. */
            emoji: string;
            /** @description true: added; false: removed. */
            added: boolean;
            /** @description Set for room messages. */
            room_id?: number;
        };
        /** @description `ruid` pinned a message of a conversation you are in (see get_pins). */
        MessagePinnedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "message_pinned";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The message. */
            msg_id: number;
            /** @description Set for room messages. */
            room_id?: number;
        };
        /** @description `ruid` unpinned a message of a conversation you are in. */
        MessageUnpinnedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "message_unpinned";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The message. */
            msg_id: number;
            /** @description Set for room messages. */
            room_id?: number;
        };
        /** @description `ruid` read your direct messages up to a message (they share read receipts). */
        MessagesReadEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "messages_read";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description Every message of yours up to this one is read. */
            through_msg_id: number;
        };
        /** @description A message you can see was deleted: drop it. */
        MessageDeletedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "message_deleted";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The message. */
            msg_id: number;
            /** @description Set for room messages. */
            room_id?: number;
        };
        /** @description A conversation was cleared up to a message: for you (your other devices), or a room for everyone. */
        HistoryClearedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "history_cleared";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description Messages up to this id are gone (0: there were none). */
            through_msg_id: number;
            /** @description The other user, for a direct conversation. */
            to_uid?: number;
            /** @description The room. */
            room_id?: number;
        };
        /** @description A user joined the room, or was added to it. */
        MemberJoinedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "member_joined";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description The member concerned. */
            uid: number;
            /** @description Who added them, for an invitation. */
            invited_by?: number;
        };
        /** @description A member left the room. */
        MemberLeftEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "member_left";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description The member concerned. */
            uid: number;
        };
        /** @description A member was removed from the room. */
        MemberKickedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "member_kicked";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description The member concerned. */
            uid: number;
        };
        /** @description A user was banned from the room: out of it at once. */
        MemberBannedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "member_banned";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description The member concerned. */
            uid: number;
        };
        /** @description A ban was lifted. */
        MemberUnbannedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "member_unbanned";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description The member concerned. */
            uid: number;
        };
        /** @description The owner made a member a moderator, or a moderator a member. */
        RoleChangedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "role_changed";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description The member concerned. */
            uid: number;
            /** @enum {unknown} */
            role: "moderator" | "member";
        };
        /** @description The room has a new name. */
        RoomRenamedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "room_renamed";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            name: string;
        };
        /** @description The room has a new description. */
        RoomDescribedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "room_described";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            description: string;
        };
        /** @description The owner deleted the room; its messages are gone. */
        RoomDeletedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "room_deleted";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The room. */
            room_id: number;
            /** @description Its last name. */
            name: string;
        };
        /** @description `ruid` came online or went offline. */
        PresenceEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "presence";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            online: boolean;
            /** @description Null: never seen. */
            last_seen: number | null;
        };
        /** @description `ruid` published or withdrew a public key: fetch their keys again before encrypting. */
        KeyChangedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "key_changed";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            key_id: string;
            /** @enum {unknown} */
            action: "published" | "deleted";
        };
        /** @description `ruid` is calling you: answer with accept_call or reject_call. */
        CallRequestEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_request";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
            /** @description The SDP offer, or null. Opaque JSON, relayed untouched. */
            offer: unknown;
        };
        /** @description The callee answered your call. */
        CallAcceptedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_accepted";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
            /** @description The SDP answer, or null. Opaque JSON, relayed untouched. */
            answer: unknown;
            /** @description STUN/TURN servers (ICE_SERVERS). */
            ice_servers: components["schemas"]["IceServer"][];
        };
        /** @description A STUN or TURN server (WebRTC RTCIceServer). */
        IceServer: {
            urls: string | string[];
            username?: string;
            credential?: string;
        };
        /** @description The callee declined your call. */
        CallRejectedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_rejected";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
            /** @enum {string} */
            reason: "rejected";
        };
        /** @description The other side hung up, or a party went offline. */
        CallEndedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_ended";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
            /** @enum {unknown} */
            reason: "hangup" | "disconnected";
        };
        /** @description The call rang CALL_RING_SECONDS unanswered. */
        CallTimeoutEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_timeout";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
            /** @enum {string} */
            reason: "timeout";
        };
        /** @description Your call could not ring: one of you is in a call. */
        CallBusyEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_busy";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
        };
        /** @description Your call could not ring: the callee has no live poll. */
        CallOfflineEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_offline";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
        };
        /** @description `ruid` called while you were offline. */
        CallMissedEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_missed";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
        };
        /** @description An offer, answer or ICE candidate from the other party. */
        CallSignalEvent: {
            /** @description The event id. */
            eid: number;
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            type: "call_signal";
            /** @description The user who caused the event. */
            ruid: number;
            /** @description The login of `ruid` (the wiki's "addition"). */
            text: string;
            /** @description When it happened. */
            time: number;
            /** @description The call. */
            call_id: number;
            /** @description What the other party sent. Opaque JSON, relayed untouched. */
            payload: unknown;
        };
        /** @description Someone is typing in a conversation of yours. */
        TypingNotice: {
            /** @description Who is typing. */
            uid: number;
            login: string;
            /** @description In your direct chat with them (their uid). */
            to_uid?: number;
            /** @description In this room. */
            room_id?: number;
            /** @description Until when (UNIX milliseconds), unless renewed: TYPING_SECONDS after it was sent. */
            expires_at: number;
        };
        /** @description A room; `role` is mine, where I am a member. */
        Room: {
            /** @description The room. */
            room_id: number;
            name: string;
            description: string;
            /** @enum {unknown} */
            type: "public" | "private";
            /** @description A channel: only the owner and moderators post; members read. */
            channel: boolean;
            /** @description In a channel, whether members may react (in other rooms always true). */
            member_reactions: boolean;
            /** @description The owner. */
            owner_uid: number;
            /** @description Members, banned ones not counted. */
            members: number;
            /** @enum {unknown} */
            role?: "owner" | "moderator" | "member" | "banned";
        };
        /** @description A member of a room, with their role. */
        Member: {
            /** @description The member. */
            uid: number;
            login: string;
            /** @enum {unknown} */
            role: "owner" | "moderator" | "member" | "banned";
            /** @description When they joined. */
            joined_at: number;
        };
        /** @description A user, as every signed-in user may see them. */
        User: {
            /** @description The user id. */
            uid: number;
            /** @description The login. */
            username: string;
            /** @description Display name (may be empty). */
            name: string;
            /** @description About the user (may be empty). */
            description: string;
        };
        /** @description Your own profile. */
        OwnProfile: {
            /** @description The user id. */
            uid: number;
            /** @description The login. */
            username: string;
            /** @description Display name (may be empty). */
            name: string;
            /** @description About the user (may be empty). */
            description: string;
            /** @description Shown to its owner only. */
            email: string | null;
            email_verified: boolean;
        };
        /** @description A friend's presence. */
        Presence: {
            /** @description The friend. */
            uid: number;
            login: string;
            /** @description Polling now, or within PRESENCE_GRACE_SECONDS (60). */
            online: boolean;
            /** @description Null: never seen. */
            last_seen: number | null;
        };
        /** @description A public key, opaque to the server. */
        PublicKey: {
            key_id: string;
            algorithm: string;
            key: string;
            /** @description When it was published or last changed. */
            time: number;
        };
        /**
         * @description A call just placed.
         * @example {
         *       "call_id": 1,
         *       "status": "ringing",
         *       "ring_seconds": 30
         *     }
         */
        Call: {
            /** @description The call. */
            call_id: number;
            /**
             * @description `ringing`: the callee got `call_request`. `busy`: one of you is in a call. `offline`: the callee has no live poll.
             * @enum {unknown}
             */
            status: "ringing" | "busy" | "offline";
            /** @description The call times out after this long unanswered (CALL_RING_SECONDS). */
            ring_seconds: number;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    authorization: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Name the account by `login` or by `email`. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "login": "alice",
                 *       "password": "secret1"
                 *     }
                 */
                "application/json": {
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login?: string;
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email?: string;
                    /** @description 6 to 256 characters. */
                    password: string;
                    /**
                     * @description The command: its name or its alias.
                     * @enum {unknown}
                     */
                    request?: "authorization" | "authorisation";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login: string;
                } | {
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email: string;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "session": {
                     *         "uid": 1,
                     *         "contact_uid": 1,
                     *         "session_key": 1,
                     *         "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1aWQiOjEsInNpZCI6MSwiZXhwIjoxNzk4ODc1Mjg4LCJpYXQiOjE3OTYyODMyODh9.G1YYj73GWohZI4hsi3JxMyFJBQWJ2RgDNkUhCAzQeS0"
                     *       },
                     *       "cursor": 1796283288925123
                     *     }
                     */
                    "application/json": {
                        session: components["schemas"]["Session"];
                        /** @description The current end of the user's event log: a new device polls from here. */
                        cursor: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    registration: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description With REQUIRE_EMAIL_VERIFICATION, `email` is required and a one-time code is mailed to it. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "login": "alice",
                 *       "password": "secret1",
                 *       "email": "alice@example.com"
                 *     }
                 */
                "application/json": {
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login: string;
                    /** @description 6 to 256 characters. */
                    password: string;
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email?: string;
                    /** @enum {string} */
                    request?: "registration";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "uid": 1,
                     *       "verification_required": false
                     *     }
                     */
                    "application/json": {
                        /** @description The new user id. */
                        uid: number;
                        /** @description True when login waits for `verify` with the mailed code. */
                        verification_required: boolean;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    resend_code: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Answers `{}` whether or not the account exists or waits for a code. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "email": "alice@example.com"
                 *     }
                 */
                "application/json": {
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login?: string;
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email?: string;
                    /** @enum {string} */
                    request?: "resend_code";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login: string;
                } | {
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email: string;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    verify: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "email": "alice@example.com",
                 *       "code": "482913"
                 *     }
                 */
                "application/json": {
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login?: string;
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email?: string;
                    /** @description The 6-digit code from the mail. */
                    code: string;
                    /** @enum {string} */
                    request?: "verify";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login: string;
                } | {
                    /**
                     * Format: email
                     * @description An e-mail address; unique regardless of case.
                     */
                    email: string;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "uid": 1
                     *     }
                     */
                    "application/json": {
                        /** @description The verified account. */
                        uid: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    change_password: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Every other session ends. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "old_password": "secret1",
                 *       "new_password": "correct-horse-7"
                 *     }
                 */
                "application/json": {
                    /** @description 6 to 256 characters. */
                    old_password: string;
                    /** @description 6 to 256 characters. */
                    new_password: string;
                    /** @enum {string} */
                    request?: "change_password";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    list_sessions: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "list_sessions";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "sessions": [
                     *         {
                     *           "session_key": 1,
                     *           "created_at": 1796283288,
                     *           "expires_at": 1798875288,
                     *           "current": true
                     *         },
                     *         {
                     *           "session_key": 4,
                     *           "created_at": 1796290112,
                     *           "expires_at": 1798882112,
                     *           "current": false
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description Live sessions, oldest first. */
                        sessions: components["schemas"]["SessionInfo"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    logout: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "logout";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    logout_all: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "keep_current": true
                 *     }
                 */
                "application/json": {
                    /** @description Keep the session of this request; default false (it ends too). */
                    keep_current?: boolean;
                    /** @enum {string} */
                    request?: "logout_all";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "ended": 1
                     *     }
                     */
                    "application/json": {
                        /** @description Sessions ended. */
                        ended: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    logout_session: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "session_key": 4
                 *     }
                 */
                "application/json": {
                    /** @description One of your sessions. */
                    session_key: number;
                    /** @enum {string} */
                    request?: "logout_session";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    renew_token: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "renew_token";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "session": {
                     *         "uid": 1,
                     *         "contact_uid": 1,
                     *         "session_key": 1,
                     *         "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1aWQiOjEsInNpZCI6MSwiZXhwIjoxNzk4ODc1Mjg4LCJpYXQiOjE3OTYyODMyODh9.G1YYj73GWohZI4hsi3JxMyFJBQWJ2RgDNkUhCAzQeS0"
                     *       }
                     *     }
                     */
                    "application/json": {
                        session: components["schemas"]["Session"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    add_contact_reply: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "contact_uid": 1,
                 *       "status": 1
                 *     }
                 */
                "application/json": {
                    /** @description The user who asked (or whom you asked, to cancel). */
                    contact_uid: number;
                    /** @description 1 accept, 2 deny, 3 cancel your own outgoing request. */
                    status: number;
                    /** @enum {string} */
                    request?: "add_contact_reply";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "contact_uid": 1,
                     *       "status": 1
                     *     }
                     */
                    "application/json": {
                        /** @description The other user. */
                        contact_uid: number;
                        status: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    add_contact_request: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "login": "bob"
                 *     }
                 */
                "application/json": {
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login: string;
                    /** @enum {string} */
                    request?: "add_contact_request";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "contact_uid": 2,
                     *       "login": "bob",
                     *       "status": 0
                     *     }
                     */
                    "application/json": {
                        /** @description The other user. */
                        contact_uid: number;
                        login: string;
                        /** @description As the caller sees the other side: 0 outgoing request, 1 friends, 2 denied, 3 incoming request. */
                        status: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    block_user: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "uid": 3
                 *     }
                 */
                "application/json": {
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "block_user";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    del_contact: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Name the contact by `contact_uid` or by `login`. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "contact_uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The contact to remove. */
                    contact_uid?: number;
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login?: string;
                    /** @enum {string} */
                    request?: "del_contact";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The contact to remove. */
                    contact_uid: number;
                } | {
                    /** @description Letters, digits, `_`, `.` and `-`; unique regardless of case. */
                    login: string;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_data: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "get_data";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "contacts": [
                     *         {
                     *           "friend_login": "bob",
                     *           "friend_uid": 2,
                     *           "status": 1
                     *         },
                     *         {
                     *           "friend_login": "carol",
                     *           "friend_uid": 3,
                     *           "status": 3
                     *         }
                     *       ],
                     *       "settings": []
                     *     }
                     */
                    "application/json": {
                        /** @description Empty list: `[]` here, `null` in the wiki dialect. */
                        contacts: components["schemas"]["Contact"][];
                        settings: unknown[];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    list_blocked: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "list_blocked";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "blocked": [
                     *         {
                     *           "uid": 3,
                     *           "login": "mallory",
                     *           "blocked_at": 1796283500
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description The latest blocked first. */
                        blocked: components["schemas"]["BlockedUser"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    unblock_user: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "uid": 3
                 *     }
                 */
                "application/json": {
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "unblock_user";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    broadcast: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg": "The server restarts at 22:00 UTC for maintenance.",
                 *       "client_msg_id": "b-1"
                 *     }
                 */
                "application/json": {
                    /** @description The text (at most MAX_MESSAGE_CHARS characters, 4096 by default). */
                    msg: string;
                    /** @description Client-chosen id: a retry with the same id returns the first reply. */
                    client_msg_id?: string;
                    /** @enum {string} */
                    request?: "broadcast";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 1,
                     *       "time": 1796283301
                     *     }
                     */
                    "application/json": {
                        /** @description The message id. */
                        msg_id: number;
                        /** @description When the server stored it (UNIX seconds). */
                        time: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    clear_history: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description A direct conversation is cleared for you only; a room for everyone, by its owner. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "to_uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @enum {string} */
                    request?: "clear_history";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    delete_msg: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2
                 *     }
                 */
                "application/json": {
                    /** @description Your message, or any in a room you moderate. */
                    msg_id: number;
                    /** @enum {string} */
                    request?: "delete_msg";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    edit_msg: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2,
                 *       "msg": "hello all"
                 *     }
                 */
                "application/json": {
                    /** @description Your message. */
                    msg_id: number;
                    /** @description The text (at most MAX_MESSAGE_CHARS characters, 4096 by default). */
                    msg: string;
                    /** @enum {string} */
                    request?: "edit_msg";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 2,
                     *       "edited_at": 1796283360
                     *     }
                     */
                    "application/json": {
                        /** @description The message. */
                        msg_id: number;
                        /** @description The edit time. */
                        edited_at: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    forward_msg: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Into a conversation where you may post: to an accepted contact (`to_uid`) or a room (`room_id`). */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2,
                 *       "to_uid": 2,
                 *       "client_msg_id": "f-1"
                 *     }
                 */
                "application/json": {
                    /** @description A message you can see (else 404). */
                    msg_id: number;
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @description Client-chosen id: a retry with the same id returns the first reply. */
                    client_msg_id?: string;
                    /** @enum {string} */
                    request?: "forward_msg";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 1,
                     *       "time": 1796283301
                     *     }
                     */
                    "application/json": {
                        /** @description The message id. */
                        msg_id: number;
                        /** @description When the server stored it (UNIX seconds). */
                        time: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_dialogs: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "offset": 0,
                 *       "count": 20
                 *     }
                 */
                "application/json": {
                    offset?: number;
                    /** @description At most 100; default 50. */
                    count?: number;
                    /** @enum {string} */
                    request?: "get_dialogs";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "dialogs": [
                     *         {
                     *           "to_uid": 2,
                     *           "title": "bob",
                     *           "last_message": {
                     *             "msg_id": 3,
                     *             "sender_uid": 2,
                     *             "sender_login": "bob",
                     *             "time": 1796283371,
                     *             "text": "hi alice",
                     *             "kind": "text",
                     *             "room_id": null,
                     *             "to_uid": 1,
                     *             "edited_at": null,
                     *             "ciphertext": null,
                     *             "file": null,
                     *             "reactions": [],
                     *             "reply_to": {
                     *               "msg_id": 1,
                     *               "sender_uid": 1,
                     *               "sender_login": "alice",
                     *               "preview": "hi bob",
                     *               "deleted": false
                     *             },
                     *             "forwarded_from": null,
                     *             "mentioned": false,
                     *             "read_by": 0
                     *           },
                     *           "unread": 1,
                     *           "mentions": 0,
                     *           "last_activity": 1796283371
                     *         },
                     *         {
                     *           "room_id": 1,
                     *           "title": "General",
                     *           "last_message": {
                     *             "msg_id": 2,
                     *             "sender_uid": 1,
                     *             "sender_login": "alice",
                     *             "time": 1796283342,
                     *             "text": "hello all",
                     *             "kind": "text",
                     *             "room_id": 1,
                     *             "to_uid": null,
                     *             "edited_at": 1796283360,
                     *             "ciphertext": null,
                     *             "file": null,
                     *             "reactions": [
                     *               {
                     *                 "emoji": "👍",
                     *                 "count": 2,
                     *                 "mine": true
                     *               }
                     *             ],
                     *             "reply_to": null,
                     *             "forwarded_from": null,
                     *             "mentioned": false,
                     *             "read_by": 1
                     *           },
                     *           "unread": 0,
                     *           "mentions": 0,
                     *           "last_activity": 1796283342
                     *         }
                     *       ],
                     *       "total": 2
                     *     }
                     */
                    "application/json": {
                        /** @description Newest activity first. */
                        dialogs: components["schemas"]["Dialog"][];
                        total: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_history: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Without `after`: the newest `count` messages (before `before`). With `after`: the `count` oldest after it. Always oldest first. */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "to_uid": 2,
                 *       "count": 20
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @description Only messages with a smaller msg_id. */
                    before?: number;
                    /** @description Only messages with a larger msg_id: page forward from here (0: from the start). */
                    after?: number;
                    /** @description At most 100; default 50. */
                    count?: number;
                    /** @enum {string} */
                    request?: "get_history";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "messages": [
                     *         {
                     *           "msg_id": 1,
                     *           "sender_uid": 1,
                     *           "sender_login": "alice",
                     *           "time": 1796283301,
                     *           "text": "hi bob",
                     *           "kind": "text",
                     *           "room_id": null,
                     *           "to_uid": 2,
                     *           "edited_at": null,
                     *           "ciphertext": null,
                     *           "file": null,
                     *           "reactions": [],
                     *           "reply_to": null,
                     *           "forwarded_from": null,
                     *           "mentioned": false,
                     *           "read_by": 1
                     *         },
                     *         {
                     *           "msg_id": 3,
                     *           "sender_uid": 2,
                     *           "sender_login": "bob",
                     *           "time": 1796283371,
                     *           "text": "hi alice",
                     *           "kind": "text",
                     *           "room_id": null,
                     *           "to_uid": 1,
                     *           "edited_at": null,
                     *           "ciphertext": null,
                     *           "file": null,
                     *           "reactions": [],
                     *           "reply_to": {
                     *             "msg_id": 1,
                     *             "sender_uid": 1,
                     *             "sender_login": "alice",
                     *             "preview": "hi bob",
                     *             "deleted": false
                     *           },
                     *           "forwarded_from": null,
                     *           "mentioned": false,
                     *           "read_by": 0
                     *         }
                     *       ],
                     *       "has_more": false
                     *     }
                     */
                    "application/json": {
                        messages: components["schemas"]["Message"][];
                        /** @description More messages lie beyond this page in the direction paged. */
                        has_more: boolean;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_pins: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @enum {string} */
                    request?: "get_pins";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "pins": [
                     *         {
                     *           "message": {
                     *             "msg_id": 2,
                     *             "sender_uid": 1,
                     *             "sender_login": "alice",
                     *             "time": 1796283342,
                     *             "text": "hello all",
                     *             "kind": "text",
                     *             "room_id": 1,
                     *             "to_uid": null,
                     *             "edited_at": 1796283360,
                     *             "ciphertext": null,
                     *             "file": null,
                     *             "reactions": [
                     *               {
                     *                 "emoji": "👍",
                     *                 "count": 2,
                     *                 "mine": true
                     *               }
                     *             ],
                     *             "reply_to": null,
                     *             "forwarded_from": null,
                     *             "mentioned": false,
                     *             "read_by": 1
                     *           },
                     *           "pinned_by": 1,
                     *           "pinned_at": 1796283400
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description The latest pinned first; those you can see in your history. */
                        pins: components["schemas"]["Pin"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_thread: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 1,
                 *       "count": 50
                 *     }
                 */
                "application/json": {
                    /** @description The message whose replies to page through: one you can see. */
                    msg_id: number;
                    /** @description Only replies with a larger msg_id (the next page; 0: from the first). */
                    after?: number;
                    /** @description At most 100; default 50. */
                    count?: number;
                    /** @enum {string} */
                    request?: "get_thread";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "root": {
                     *         "msg_id": 1,
                     *         "sender_uid": 1,
                     *         "sender_login": "alice",
                     *         "time": 1796283301,
                     *         "text": "hi bob",
                     *         "kind": "text",
                     *         "room_id": null,
                     *         "to_uid": 2,
                     *         "edited_at": null,
                     *         "ciphertext": null,
                     *         "file": null,
                     *         "reactions": [],
                     *         "reply_to": null,
                     *         "forwarded_from": null,
                     *         "mentioned": false,
                     *         "read_by": 1
                     *       },
                     *       "replies": [
                     *         {
                     *           "msg_id": 3,
                     *           "sender_uid": 2,
                     *           "sender_login": "bob",
                     *           "time": 1796283371,
                     *           "text": "hi alice",
                     *           "kind": "text",
                     *           "room_id": null,
                     *           "to_uid": 1,
                     *           "edited_at": null,
                     *           "ciphertext": null,
                     *           "file": null,
                     *           "reactions": [],
                     *           "reply_to": {
                     *             "msg_id": 1,
                     *             "sender_uid": 1,
                     *             "sender_login": "alice",
                     *             "preview": "hi bob",
                     *             "deleted": false
                     *           },
                     *           "forwarded_from": null,
                     *           "mentioned": false,
                     *           "read_by": 0
                     *         }
                     *       ],
                     *       "has_more": false
                     *     }
                     */
                    "application/json": {
                        root: components["schemas"]["Message"];
                        /** @description Oldest first. */
                        replies: components["schemas"]["Message"][];
                        /** @description More replies follow this page. */
                        has_more: boolean;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    mark_read: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "to_uid": 2,
                 *       "msg_id": 3
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @description Everything up to this message is read. */
                    msg_id: number;
                    /** @enum {string} */
                    request?: "mark_read";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "unread": 0
                     *     }
                     */
                    "application/json": {
                        /** @description Messages still unread in the conversation. */
                        unread: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    pin_msg: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2
                 *     }
                 */
                "application/json": {
                    /** @description A message you can see: in a room you moderate or own, or in one of your direct chats. */
                    msg_id: number;
                    /** @enum {string} */
                    request?: "pin_msg";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 2,
                     *       "pinned": true
                     *     }
                     */
                    "application/json": {
                        /** @description The message. */
                        msg_id: number;
                        /** @description Whether it is pinned now. */
                        pinned: boolean;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    react: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2,
                 *       "emoji": "👍"
                 *     }
                 */
                "application/json": {
                    /** @description A message you can see: as history shows it to you. */
                    msg_id: number;
                    /** @description One emoji (a sequence with modifiers and joiners counts as one), at most MAX_REACTION_CHARS characters (16 by default). */
                    emoji: string;
                    /** @enum {string} */
                    request?: "react";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 2,
                     *       "reactions": [
                     *         {
                     *           "emoji": "👍",
                     *           "count": 2,
                     *           "mine": true
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description The message. */
                        msg_id: number;
                        /** @description Its reactions now, as history shows them. */
                        reactions: components["schemas"]["Reaction"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    search_msgs: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "query": "hel"
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @description Words; each must match a word of the message or its beginning, regardless of case. */
                    query: string;
                    /** @description Only messages with a smaller msg_id (the next page). */
                    before?: number;
                    /** @description At most 100; default 20. */
                    count?: number;
                    /** @enum {string} */
                    request?: "search_msgs";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "messages": [
                     *         {
                     *           "msg_id": 2,
                     *           "sender_uid": 1,
                     *           "sender_login": "alice",
                     *           "time": 1796283342,
                     *           "text": "hello all",
                     *           "kind": "text",
                     *           "room_id": 1,
                     *           "to_uid": null,
                     *           "edited_at": 1796283360,
                     *           "ciphertext": null,
                     *           "file": null,
                     *           "reactions": [
                     *             {
                     *               "emoji": "👍",
                     *               "count": 2,
                     *               "mine": true
                     *             }
                     *           ],
                     *           "reply_to": null,
                     *           "forwarded_from": null,
                     *           "mentioned": false,
                     *           "read_by": 1
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description Newest first. */
                        messages: components["schemas"]["Message"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    send_msg: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description To an accepted contact (`to_uid`) or to a room you are a member of (`room_id`). */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "to_uid": 2,
                 *       "msg": "hi bob",
                 *       "client_msg_id": "m-1"
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @description The text (at most MAX_MESSAGE_CHARS characters, 4096 by default). */
                    msg: string;
                    /**
                     * @description Default `text`.
                     * @enum {unknown}
                     */
                    kind?: "text" | "sticker";
                    /** @description Client-chosen id: a retry with the same id returns the first reply. */
                    client_msg_id?: string;
                    /** @description Opaque ciphertext per recipient: `{"<uid>": "<base64>"}` (at most 1000 entries of 64 KiB). Each reader gets its own entry as `ciphertext`; `msg` then carries a placeholder for clients without the key. Direct messages may name only their two users. */
                    ciphertexts?: {
                        [key: string]: string;
                    };
                    /** @description Attach your upload (POST /upload_file); the message's kind becomes `file` and `msg` is its caption. */
                    file_id?: number;
                    /** @description Answer this message: one of the same conversation that you can see (else 404). */
                    reply_to?: number;
                    /** @enum {string} */
                    request?: "send_msg";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 1,
                     *       "time": 1796283301
                     *     }
                     */
                    "application/json": {
                        /** @description The message id. */
                        msg_id: number;
                        /** @description When the server stored it (UNIX seconds). */
                        time: number;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    set_read_receipts: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "enabled": false
                 *     }
                 */
                "application/json": {
                    /** @description false: private receipts: your reading is not shown to others nor told to senders. */
                    enabled: boolean;
                    /** @enum {string} */
                    request?: "set_read_receipts";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "read_receipts": false
                     *     }
                     */
                    "application/json": {
                        read_receipts: boolean;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    typing: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Where you are typing: a direct chat with a contact (`to_uid`) or a room (`room_id`). */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "to_uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The other user of a direct conversation. */
                    to_uid?: number;
                    /** @description The room. */
                    room_id?: number;
                    /** @enum {string} */
                    request?: "typing";
                    session?: components["schemas"]["SessionRef"];
                } & ({
                    /** @description The other user of a direct conversation. */
                    to_uid: number;
                } | {
                    /** @description The room. */
                    room_id: number;
                });
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    unpin_msg: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2
                 *     }
                 */
                "application/json": {
                    /** @description A message you can see: in a room you moderate or own, or in one of your direct chats. */
                    msg_id: number;
                    /** @enum {string} */
                    request?: "unpin_msg";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 2,
                     *       "pinned": true
                     *     }
                     */
                    "application/json": {
                        /** @description The message. */
                        msg_id: number;
                        /** @description Whether it is pinned now. */
                        pinned: boolean;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    unreact: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "msg_id": 2,
                 *       "emoji": "👍"
                 *     }
                 */
                "application/json": {
                    /** @description A message you can see: as history shows it to you. */
                    msg_id: number;
                    /** @description One emoji (a sequence with modifiers and joiners counts as one), at most MAX_REACTION_CHARS characters (16 by default). */
                    emoji: string;
                    /** @enum {string} */
                    request?: "unreact";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "msg_id": 2,
                     *       "reactions": [
                     *         {
                     *           "emoji": "👍",
                     *           "count": 2,
                     *           "mine": true
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description The message. */
                        msg_id: number;
                        /** @description Its reactions now, as history shows them. */
                        reactions: components["schemas"]["Reaction"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    update_data: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "cursor": 1796283288925123,
                 *       "timeout": 25
                 *     }
                 */
                "application/json": {
                    /** @description Position in the caller's event log: microseconds since the epoch, strictly increasing in commit order. */
                    cursor?: number;
                    /** @description Skip events older than this UNIX second. */
                    last_time?: number;
                    /** @description Alias of `last_time` (the desktop client's name). */
                    last_update?: number;
                    /** @description Seconds to hold the request when nothing is pending; default 25, capped at 60. */
                    timeout?: number;
                    /** @enum {string} */
                    request?: "update_data";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "server_time": 1796283372,
                     *       "cursor": 1796283371218723,
                     *       "msg_array": [
                     *         {
                     *           "msg_id": 3,
                     *           "sender_uid": 2,
                     *           "sender_login": "bob",
                     *           "time": 1796283371,
                     *           "text": "hi alice"
                     *         }
                     *       ],
                     *       "events_array": [
                     *         {
                     *           "eid": 7,
                     *           "type": "member_joined",
                     *           "ruid": 2,
                     *           "text": "bob",
                     *           "time": 1796283331,
                     *           "room_id": 1,
                     *           "uid": 2
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description The server clock at the reply. */
                        server_time: number;
                        /** @description Position in the caller's event log: microseconds since the epoch, strictly increasing in commit order. */
                        cursor: number;
                        msg_array: components["schemas"]["PolledMessage"][];
                        events_array: components["schemas"]["Event"][];
                        /** @description Who is typing now in your conversations (ephemeral: not stored, no cursor). */
                        typing?: components["schemas"]["TypingNotice"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    ban_member: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "ban_member";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    create_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description 1 to 64 characters. */
                    name: string;
                    /** @description At most 1024 characters. */
                    description?: string;
                    /**
                     * @description `public`: anyone may find and join it; `private`: by invitation.
                     * @enum {unknown}
                     */
                    type: "public" | "private";
                    /** @description A channel: only the owner and moderators post (default false). */
                    channel?: boolean;
                    /** @description For a channel: whether members may react (default true). */
                    member_reactions?: boolean;
                    /** @enum {string} */
                    request?: "create_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "room": {
                     *         "room_id": 1,
                     *         "name": "General",
                     *         "description": "all of us",
                     *         "type": "public",
                     *         "channel": false,
                     *         "member_reactions": true,
                     *         "owner_uid": 1,
                     *         "members": 2,
                     *         "role": "owner"
                     *       }
                     *     }
                     */
                    "application/json": {
                        room: components["schemas"]["Room"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    delete_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @enum {string} */
                    request?: "delete_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    describe_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "description": "all of us, all the time"
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description At most 1024 characters. */
                    description: string;
                    /** @enum {string} */
                    request?: "describe_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "room": {
                     *         "room_id": 1,
                     *         "name": "General",
                     *         "description": "all of us",
                     *         "type": "public",
                     *         "channel": false,
                     *         "member_reactions": true,
                     *         "owner_uid": 1,
                     *         "members": 2,
                     *         "role": "owner"
                     *       }
                     *     }
                     */
                    "application/json": {
                        room: components["schemas"]["Room"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    invite_to_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "invite_to_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    join_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @enum {string} */
                    request?: "join_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "room": {
                     *         "room_id": 1,
                     *         "name": "General",
                     *         "description": "all of us",
                     *         "type": "public",
                     *         "channel": false,
                     *         "member_reactions": true,
                     *         "owner_uid": 1,
                     *         "members": 2,
                     *         "role": "owner"
                     *       }
                     *     }
                     */
                    "application/json": {
                        room: components["schemas"]["Room"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    kick_member: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "kick_member";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    leave_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @enum {string} */
                    request?: "leave_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    member_info: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "member_info";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "member": {
                     *         "uid": 2,
                     *         "login": "bob",
                     *         "role": "member",
                     *         "joined_at": 1796283331
                     *       }
                     *     }
                     */
                    "application/json": {
                        member: components["schemas"]["Member"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    my_rooms: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "my_rooms";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "rooms": [
                     *         {
                     *           "room_id": 1,
                     *           "name": "General",
                     *           "description": "all of us",
                     *           "type": "public",
                     *           "channel": false,
                     *           "member_reactions": true,
                     *           "owner_uid": 1,
                     *           "members": 2,
                     *           "role": "owner"
                     *         },
                     *         {
                     *           "room_id": 4,
                     *           "name": "Announcements",
                     *           "description": "news from the team",
                     *           "type": "public",
                     *           "channel": true,
                     *           "member_reactions": true,
                     *           "owner_uid": 3,
                     *           "members": 500
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        rooms: components["schemas"]["Room"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    rename_room: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "name": "General chat"
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description 1 to 64 characters. */
                    name: string;
                    /** @enum {string} */
                    request?: "rename_room";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "room": {
                     *         "room_id": 1,
                     *         "name": "General",
                     *         "description": "all of us",
                     *         "type": "public",
                     *         "channel": false,
                     *         "member_reactions": true,
                     *         "owner_uid": 1,
                     *         "members": 2,
                     *         "role": "owner"
                     *       }
                     *     }
                     */
                    "application/json": {
                        room: components["schemas"]["Room"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    room_members: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "offset": 0,
                 *       "count": 100
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    offset?: number;
                    /** @description At most 1000; default 100. */
                    count?: number;
                    /** @enum {string} */
                    request?: "room_members";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "members": [
                     *         {
                     *           "uid": 1,
                     *           "login": "alice",
                     *           "role": "owner",
                     *           "joined_at": 1796283320
                     *         },
                     *         {
                     *           "uid": 2,
                     *           "login": "bob",
                     *           "role": "member",
                     *           "joined_at": 1796283331
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        members: components["schemas"]["Member"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    search_rooms: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "prefix": "g",
                 *       "count": 20
                 *     }
                 */
                "application/json": {
                    /** @description The beginning of the name, regardless of case; empty lists all. */
                    prefix: string;
                    offset?: number;
                    /** @description At most 100; default 20. */
                    count?: number;
                    /** @enum {string} */
                    request?: "search_rooms";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "rooms": [
                     *         {
                     *           "room_id": 1,
                     *           "name": "General",
                     *           "description": "all of us",
                     *           "type": "public",
                     *           "channel": false,
                     *           "member_reactions": true,
                     *           "owner_uid": 1,
                     *           "members": 2,
                     *           "role": "owner"
                     *         },
                     *         {
                     *           "room_id": 4,
                     *           "name": "Announcements",
                     *           "description": "news from the team",
                     *           "type": "public",
                     *           "channel": true,
                     *           "member_reactions": true,
                     *           "owner_uid": 3,
                     *           "members": 500
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        rooms: components["schemas"]["Room"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    set_role: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "uid": 2,
                 *       "role": "moderator"
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description The member. */
                    uid: number;
                    /** @enum {unknown} */
                    role: "moderator" | "member";
                    /** @enum {string} */
                    request?: "set_role";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    unban_member: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "room_id": 1,
                 *       "uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description The room. */
                    room_id: number;
                    /** @description The user. */
                    uid: number;
                    /** @enum {string} */
                    request?: "unban_member";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    list_users: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "query": "b",
                 *       "count": 2
                 *     }
                 */
                "application/json": {
                    /** @description Only users whose login or display name starts with this (any case). */
                    query?: string;
                    /** @description The `next` of the previous page. */
                    after?: number;
                    /** @description At most 100; default 50. */
                    count?: number;
                    /** @enum {string} */
                    request?: "list_users";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "users": [
                     *         {
                     *           "uid": 2,
                     *           "username": "bob",
                     *           "name": "Bob",
                     *           "description": ""
                     *         },
                     *         {
                     *           "uid": 5,
                     *           "username": "bella",
                     *           "name": "Bella",
                     *           "description": "Drums"
                     *         }
                     *       ],
                     *       "next": 5
                     *     }
                     */
                    "application/json": {
                        /** @description By user id. */
                        users: components["schemas"]["User"][];
                        /** @description Null on the last page. */
                        next: number | null;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    update_profile: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "name": "Alice",
                 *       "description": "Tea, cats and distributed systems"
                 *     }
                 */
                "application/json": {
                    /** @description Display name, at most 64 characters. */
                    name?: string;
                    /** @description At most 500 characters. */
                    description?: string;
                    /** @enum {string} */
                    request?: "update_profile";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "user": {
                     *         "uid": 1,
                     *         "username": "alice",
                     *         "name": "Alice",
                     *         "description": "Tea, cats and distributed systems",
                     *         "email": "alice@example.com",
                     *         "email_verified": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        user: components["schemas"]["OwnProfile"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    whoami: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "whoami";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "user": {
                     *         "uid": 1,
                     *         "username": "alice",
                     *         "name": "Alice",
                     *         "description": "Tea, cats and distributed systems",
                     *         "email": "alice@example.com",
                     *         "email_verified": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        user: components["schemas"]["OwnProfile"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_presence: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "get_presence";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "presence": [
                     *         {
                     *           "uid": 2,
                     *           "login": "bob",
                     *           "online": true,
                     *           "last_seen": 1796283301
                     *         },
                     *         {
                     *           "uid": 3,
                     *           "login": "carol",
                     *           "online": false,
                     *           "last_seen": null
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description Your friends, by login. */
                        presence: components["schemas"]["Presence"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    delete_key: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "key_id": "laptop"
                 *     }
                 */
                "application/json": {
                    /** @description Your name for the key (e.g. a device id). */
                    key_id: string;
                    /** @enum {string} */
                    request?: "delete_key";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_keys: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "uid": 2
                 *     }
                 */
                "application/json": {
                    /** @description Yourself or a friend. */
                    uid: number;
                    /** @enum {string} */
                    request?: "get_keys";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "keys": [
                     *         {
                     *           "key_id": "phone",
                     *           "algorithm": "x25519",
                     *           "key": "Hf7n5Xv0pZ1tq0m9G0R3cJ8kqv6fY2Lr0b5tWm1nS2A=",
                     *           "time": 1796283290
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description By key_id. */
                        keys: components["schemas"]["PublicKey"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    publish_key: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "key_id": "laptop",
                 *       "key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
                 *       "algorithm": "x25519"
                 *     }
                 */
                "application/json": {
                    /** @description Your name for the key (e.g. a device id). */
                    key_id: string;
                    /** @description The public key, opaque to the server (e.g. base64), at most 8192 characters. */
                    key: string;
                    /** @description Free text for clients, e.g. `x25519`. */
                    algorithm?: string;
                    /** @enum {string} */
                    request?: "publish_key";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    accept_call: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "call_id": 1,
                 *       "answer": {
                 *         "type": "answer",
                 *         "sdp": "v=0\r\no=- 2890844526 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                 *       }
                 *     }
                 */
                "application/json": {
                    /** @description The call. */
                    call_id: number;
                    /** @description The SDP answer. Opaque to the server; at most MAX_CALL_SIGNAL_BYTES (16 KiB) of JSON. */
                    answer?: unknown;
                    /** @enum {string} */
                    request?: "accept_call";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "call_id": 1,
                     *       "ice_servers": [
                     *         {
                     *           "urls": "stun:stun.example.com:3478"
                     *         },
                     *         {
                     *           "urls": [
                     *             "turn:turn.example.com:3478"
                     *           ],
                     *           "username": "messenger",
                     *           "credential": "s3cret"
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @description The call. */
                        call_id: number;
                        /** @description STUN/TURN servers (ICE_SERVERS); the caller gets them in `call_accepted`. */
                        ice_servers: components["schemas"]["IceServer"][];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    call: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "to_uid": 2,
                 *       "offer": {
                 *         "type": "offer",
                 *         "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                 *       }
                 *     }
                 */
                "application/json": {
                    /** @description A friend to call. */
                    to_uid: number;
                    /** @description The SDP offer. Opaque to the server; at most MAX_CALL_SIGNAL_BYTES (16 KiB) of JSON. */
                    offer?: unknown;
                    /** @enum {string} */
                    request?: "call";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Call"];
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (`forbidden`, `not_friends`, `email_unverified`) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    call_signal: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "call_id": 1,
                 *       "payload": {
                 *         "candidate": "candidate:1 1 udp 2122260223 192.168.1.20 54400 typ host",
                 *         "sdpMid": "0",
                 *         "sdpMLineIndex": 0
                 *       }
                 *     }
                 */
                "application/json": {
                    /** @description The call. */
                    call_id: number;
                    /** @description An offer, answer or ICE candidate. Opaque to the server; at most MAX_CALL_SIGNAL_BYTES (16 KiB) of JSON. */
                    payload: unknown;
                    /** @enum {string} */
                    request?: "call_signal";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    hang_up: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "call_id": 1
                 *     }
                 */
                "application/json": {
                    /** @description The call. */
                    call_id: number;
                    /** @enum {string} */
                    request?: "hang_up";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    reject_call: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "call_id": 1
                 *     }
                 */
                "application/json": {
                    /** @description The call. */
                    call_id: number;
                    /** @enum {string} */
                    request?: "reject_call";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_push_key: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example {} */
                "application/json": {
                    /** @enum {string} */
                    request?: "get_push_key";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "public_key": "BHoYEreN0tBCQQ0U3OmaqTlfpUOwdfBUHjxmVKxQbkLVQBd13ppk-fIxVPoWcNVIr8QZA6XAKFoo9IlEg0VpWKo"
                     *     }
                     */
                    "application/json": {
                        /** @description The server's VAPID public key (RFC 8292), base64url: the `applicationServerKey` of `pushManager.subscribe()`. */
                        public_key: string;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    push_subscribe: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABnR3mK0Xq",
                 *       "keys": {
                 *         "p256dh": "BEY8bQyzrAb0V9T7tbhzBx1jEXb4ysGw9zu7fshdyyogZlz_t5nKKdieWw1zdXxGiVR1_0uKHXkGl2K0tVBpGr8",
                 *         "auth": "AtHASni56zrTdAmj2GIZHg"
                 *       },
                 *       "include_text": true
                 *     }
                 */
                "application/json": {
                    /** @description The push service's URL for this browser (PushSubscription.endpoint): https: (or http:), printable ASCII, at most 1024 characters; push_subscribe also needs it to parse as a URL with a host (port, if any, 1 to 65535). */
                    endpoint: string;
                    /** @description PushSubscription.toJSON().keys. */
                    keys: {
                        /** @description The browser's P-256 public key, uncompressed. Base64url of 65 bytes. */
                        p256dh: string;
                        /** @description The browser's auth secret. Base64url of 16 bytes. */
                        auth: string;
                    };
                    /** @description Put the message's text in its pushes (default false: who wrote, and where, only). */
                    include_text?: boolean;
                    /** @enum {string} */
                    request?: "push_subscribe";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "subscribed": true
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        subscribed: true;
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    push_unsubscribe: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABnR3mK0Xq"
                 *     }
                 */
                "application/json": {
                    /** @description The push service's URL for this browser (PushSubscription.endpoint): https: (or http:), printable ASCII, at most 1024 characters; push_subscribe also needs it to parse as a URL with a host (port, if any, 1 to 65535). */
                    endpoint: string;
                    /** @enum {string} */
                    request?: "push_unsubscribe";
                    session?: components["schemas"]["SessionRef"];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example {} */
                    "application/json": Record<string, never>;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    get_user: {
        parameters: {
            query: {
                /** @description The user id. */
                id: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "user": {
                     *         "uid": 2,
                     *         "username": "bob",
                     *         "name": "Bob",
                     *         "description": ""
                     *       }
                     *     }
                     */
                    "application/json": {
                        user: components["schemas"]["User"];
                    };
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    upload_file: {
        parameters: {
            query?: {
                /** @description The file name shown to others (no slashes or control characters); default `file`. */
                name?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description The raw bytes; the Content-Type header is recorded as the file's type. */
        requestBody: {
            content: {
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["File"];
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`) */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    download_file: {
        parameters: {
            query?: never;
            header?: {
                /** @description One range, `bytes=<first>-<last>`, for a 206 with that part; several ranges get the whole file. */
                range?: string;
            };
            path: {
                /** @description The file. */
                file_id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The whole file. */
            200: {
                headers: {
                    /** @description The type recorded at upload. */
                    "content-type"?: string;
                    /** @description Bytes in this reply. */
                    "content-length"?: number;
                    /** @description The file's name (RFC 6266), e.g. `attachment; filename="photo.jpg"`. */
                    "content-disposition"?: string;
                    /** @description The content's SHA-256, quoted. */
                    etag?: string;
                    /** @description `bytes`. */
                    "accept-ranges"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": string;
                };
            };
            /** @description The requested range. */
            206: {
                headers: {
                    /** @description The type recorded at upload. */
                    "content-type"?: string;
                    /** @description Bytes in this reply. */
                    "content-length"?: number;
                    /** @description The file's name (RFC 6266), e.g. `attachment; filename="photo.jpg"`. */
                    "content-disposition"?: string;
                    /** @description The content's SHA-256, quoted. */
                    etag?: string;
                    /** @description `bytes`. */
                    "accept-ranges"?: string;
                    /** @description The part sent: `bytes <first>-<last>/<size>`. */
                    "content-range"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": string;
                };
            };
            /** @description Malformed request (`bad_request`) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Missing, invalid, expired or logged-out session (`unauthorized`) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user, contact, room, message, call or file (`not_found`) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description The file's content is missing or damaged on the server (`file_unavailable`) */
            410: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description The range lies outside the file (`range_not_satisfiable`) */
            416: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Rate limited (`rate_limited`): retry after Retry-After seconds */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Database unavailable (`unavailable`): retry after Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again. */
                    "retry-after"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
}
