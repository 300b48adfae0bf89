// postd console: a client of postd's JSON API, served from /admin/admin.js.
//
// Rules this file keeps (tests/it/console.rs checks them in a browser and in the source):
// - text from the server is only ever set as text (textContent, text nodes, attribute
//   values), never parsed as HTML;
// - the token lives in sessionStorage (this tab, until it closes), never in localStorage
//   or a cookie, and requests carry no cookies;
// - every control is a native one (links, buttons, inputs, a <dialog>), so the keyboard
//   reaches and works all of it.
'use strict';

(function () {
  const TOKEN_KEY = 'postd.console.token';
  const PAGE_SIZE = 20;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------
  // Building the page from data, as text
  // ---------------------------------------------------------------------------------

  /** An element with attributes and children; strings become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  /** A <time> showing a timestamp in local time, the exact UTC value as its tooltip. */
  function timeNode(iso) {
    const date = new Date(iso);
    return el('time', { datetime: iso, title: iso }, dateFormat.format(date));
  }

  function fromNow(iso) {
    const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
    const units = [
      ['year', 365 * 86400], ['month', 30 * 86400], ['day', 86400],
      ['hour', 3600], ['minute', 60], ['second', 1],
    ];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size || unit === 'second') {
        return relative.format(Math.round(seconds / size), unit);
      }
    }
    return '';
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // ---------------------------------------------------------------------------------
  // Talking to the API
  // ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail, errors, retryAfter) {
      super(detail);
      this.status = status;
      this.errors = errors || [];
      this.retryAfter = retryAfter;
    }
  }

  /** Thrown after a 401 mid-session: the page has already gone back to sign-in. */
  class SessionEnded extends Error {}

  const session = {
    token: null,
    me: null,
    load() {
      try { this.token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { this.token = null; }
    },
    save(token) {
      this.token = token;
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* memory only */ }
    },
    clear() {
      this.token = null;
      this.me = null;
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing stored */ }
    },
  };

  async function api(method, path, body, headers) {
    const sent = Object.assign({ Accept: 'application/json' }, headers || {});
    if (session.token) sent.Authorization = 'Bearer ' + session.token;
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (_) {
      throw new ApiError(0, 'The server could not be reached. Check that postd is running, then try again.');
    }
    let data = null;
    if (response.status !== 204) {
      const text = await response.text();
      if (text) {
        try { data = JSON.parse(text); } catch (_) { data = null; }
      }
    }
    if (response.status === 401 && session.token) {
      sessionEnded((data && data.detail) || '');
      throw new SessionEnded();
    }
    if (!response.ok) {
      const detail = (data && data.detail) || `The server answered ${response.status} ${response.statusText}.`;
      throw new ApiError(response.status, detail, data && data.errors, response.headers.get('Retry-After'));
    }
    return data;
  }

  function query(params) {
    const parts = [];
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== '') {
        parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
      }
    }
    return parts.length ? '?' + parts.join('&') : '';
  }

  // ---------------------------------------------------------------------------------
  // Messages
  // ---------------------------------------------------------------------------------

  let retryAction = null;

  function alertError(message, retry) {
    $('alert-text').textContent = message;
    retryAction = retry || null;
    show($('alert-retry'), Boolean(retry));
    show($('alert'), true);
  }

  function clearAlert() {
    show($('alert'), false);
    retryAction = null;
  }

  function notify(message) {
    const notice = $('notice');
    notice.textContent = message;
    show(notice, Boolean(message));
  }

  /** What went wrong, in words an operator can act on. */
  function explain(err) {
    if (err instanceof ApiError) {
      if (err.status === 0) return err.message;
      if (err.status === 403) return 'This needs an admin. ' + err.message;
      if (err.status === 503) return 'The server is busy or shutting down; try again in a moment. (' + err.message + ')';
      if (err.status >= 500) return 'The server hit an error: ' + err.message;
      return err.message;
    }
    return 'Something went wrong in the console: ' + (err && err.message ? err.message : String(err));
  }

  /** Handles a failed call: a session that ended has already been dealt with. */
  function failed(err, retry) {
    if (err instanceof SessionEnded) return;
    alertError(explain(err), retry);
  }

  // ---------------------------------------------------------------------------------
  // Views
  // ---------------------------------------------------------------------------------

  const VIEWS = ['loading', 'signin', 'denied', 'trash', 'purge', 'audit', 'users'];
  const SIGNED_IN_VIEWS = ['trash', 'purge', 'audit', 'users'];

  function showView(name, focusHeading) {
    for (const view of VIEWS) show($('view-' + view), view === name);
    const signedIn = SIGNED_IN_VIEWS.includes(name);
    show($('nav'), signedIn);
    show($('who'), signedIn);
    for (const link of document.querySelectorAll('#nav a')) {
      if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const titles = {
      signin: 'Sign in', denied: 'For admins only', trash: 'Trash', purge: 'Purge', audit: 'Audit log', users: 'Users',
    };
    document.title = (titles[name] ? titles[name] + ' · ' : '') + 'postd console';
    if (focusHeading) {
      const heading = document.querySelector('#view-' + name + ' h1');
      if (heading) heading.focus();
    }
  }

  function currentSection() {
    const wanted = location.hash.replace('#', '');
    return SIGNED_IN_VIEWS.includes(wanted) ? wanted : 'trash';
  }

  function openSection(focusHeading) {
    const section = currentSection();
    clearAlert();
    notify('');
    showView(section, focusHeading);
    // The live feed follows the audit log's first page only while it is on screen.
    if (section !== 'audit') live.stop('off', 'Off.');
    if (section === 'trash') trash.load();
    if (section === 'audit') audit.load();
    if (section === 'users') users.load();
  }

  // ---------------------------------------------------------------------------------
  // Signing in and out
  // ---------------------------------------------------------------------------------

  function showSignIn(message) {
    show($('signin-message'), Boolean(message));
    $('signin-message').textContent = message || '';
    show($('signin-error'), false);
    $('password').value = '';
    showView('signin', false);
    const field = $('username').value ? $('password') : $('username');
    field.focus();
  }

  /** A 401 in the middle of a session: back to sign-in, saying why. */
  function sessionEnded(detail) {
    live.stop();
    people.clear();
    session.clear();
    clearAlert();
    notify('');
    for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
    const why = detail ? ` (${detail})` : '';
    showSignIn(`Your session has ended${why}. Sign in again to continue; nothing was changed by the last action.`);
  }

  async function afterSignIn(focusHeading) {
    const me = await api('GET', '/auth/me');
    session.me = me;
    if (me.role !== 'admin') {
      $('denied-name').textContent = me.username;
      session.clear();
      showView('denied', true);
      return;
    }
    $('who-name').textContent = me.username;
    openSection(focusHeading);
  }

  async function signIn(event) {
    event.preventDefault();
    const username = $('username').value.trim();
    const password = $('password').value;
    const error = $('signin-error');
    show(error, false);
    if (!username || !password) {
      error.textContent = 'Enter your username and your password.';
      show(error, true);
      (username ? $('password') : $('username')).focus();
      return;
    }
    const button = $('signin-submit');
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      session.clear();
      const answer = await api('POST', '/auth/login', { username, password });
      session.save(answer.access_token);
      show($('signin-message'), false);
      $('password').value = '';
      await afterSignIn(true);
    } catch (err) {
      session.clear();
      let message = explain(err);
      if (err instanceof ApiError && (err.status === 401 || err.status === 422)) {
        message = 'That username and password do not match an account.';
      } else if (err instanceof ApiError && err.status === 429) {
        message = `Too many failed sign-ins. Try again in ${err.retryAfter || 'a few'} seconds.`;
      }
      error.textContent = message;
      show(error, true);
      $('password').focus();
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  }

  function signOut() {
    session.clear();
    clearAlert();
    notify('');
    $('username').value = '';
    live.stop();
    people.clear();
    trash.reset();
    audit.reset();
    users.reset();
    showSignIn('You are signed out.');
  }

  // ---------------------------------------------------------------------------------
  // A paged listing: a stack of cursors, so "Newer" goes back the way it came
  // ---------------------------------------------------------------------------------

  class Pages {
    constructor() { this.reset(); }
    reset() { this.cursors = [null]; this.index = 0; this.next = null; }
    get cursor() { return this.cursors[this.index]; }
    forward() {
      if (!this.next) return false;
      this.cursors = this.cursors.slice(0, this.index + 1);
      this.cursors.push(this.next);
      this.index += 1;
      return true;
    }
    back() {
      if (this.index === 0) return false;
      this.index -= 1;
      return true;
    }
  }

  /** A positive id typed into a filter, or null for none; throws a message otherwise. */
  function idFilter(input, errorNode) {
    const text = input.value.trim();
    input.removeAttribute('aria-invalid');
    show(errorNode, false);
    if (text === '') return null;
    if (!/^[0-9]{1,19}$/.test(text) || /^0+$/.test(text)) {
      input.setAttribute('aria-invalid', 'true');
      errorNode.textContent = `${input.labels[0].textContent} must be a positive whole number.`;
      show(errorNode, true);
      input.focus();
      throw new Error('invalid filter');
    }
    return text;
  }

  // ---------------------------------------------------------------------------------
  // People: user ids shown as usernames
  // ---------------------------------------------------------------------------------

  /**
   * Usernames by id, learned from GET /admin/users. Its cursor is a user id, so the page
   * from cursor ID+1 starts at user ID if they still exist: one request resolves an id
   * and the 99 users before it. An id not found belonged to a user since erased or
   * deleted ("deleted user #ID"); a lookup that fails leaves "user #ID", never an error.
   */
  const people = {
    names: new Map(),
    gone: new Set(),

    clear() {
      this.names.clear();
      this.gone.clear();
    },

    learn(user) {
      this.names.set(user.id, user.username);
      this.gone.delete(user.id);
    },

    /** After an erasure: the name is not shown again. */
    forget(id) {
      this.names.delete(id);
      this.gone.add(id);
    },

    /** Looks up the ids not known yet (ten pages of users at most). */
    async resolve(ids) {
      const wanted = [...new Set(ids)]
        .filter((id) => Number.isSafeInteger(id) && id > 0 && !this.names.has(id) && !this.gone.has(id))
        .sort((a, b) => b - a);
      for (let requests = 0; wanted.length && requests < 10; requests += 1) {
        const top = wanted[0];
        let page;
        try {
          page = await api('GET', '/admin/users' + query({ limit: 100, cursor: String(top + 1) }));
        } catch (err) {
          if (err instanceof SessionEnded) throw err;
          return;
        }
        for (const user of page.items) this.learn(user);
        // The page covers every id from `top` down to its last user, or to 1 when it is
        // the last page.
        const last = page.items[page.items.length - 1];
        const lowest = page.next_cursor && last ? last.id : 1;
        while (wanted.length && wanted[0] >= lowest) {
          const id = wanted.shift();
          if (!this.names.has(id)) this.gone.add(id);
        }
      }
    },

    /** A person: the username with the id beside it, muted. */
    node(id) {
      if (this.names.has(id)) {
        return el('span', { class: 'person', title: `user #${id}` },
          el('span', { class: 'person-name' }, this.names.get(id)), ' ',
          el('span', { class: 'person-id' }, `#${id}`));
      }
      if (this.gone.has(id)) {
        return el('span', { class: 'person gone', title: 'This user has been erased or deleted' }, `deleted user #${id}`);
      }
      return el('span', { class: 'person' }, `user #${id}`);
    },
  };

  // ---------------------------------------------------------------------------------
  // The trash
  // ---------------------------------------------------------------------------------

  const trash = {
    pages: new Pages(),
    filters: { q: '', author_id: null },
    items: [],
    selected: new Map(),
    rowErrors: new Map(),
    loading: 0,

    reset() {
      this.pages.reset();
      this.items = [];
      this.selected.clear();
      this.rowErrors.clear();
      $('trash-rows').replaceChildren();
    },

    async load() {
      const ticket = ++this.loading;
      const table = $('trash-table');
      table.setAttribute('aria-busy', 'true');
      $('trash-status').textContent = 'Loading the trash…';
      if (!this.items.length) show($('trash-empty'), false);
      try {
        const page = await api('GET', '/trash' + query({
          limit: PAGE_SIZE,
          q: this.filters.q,
          author_id: this.filters.author_id,
          cursor: this.pages.cursor,
        }));
        if (ticket !== this.loading) return;
        await people.resolve(page.items.flatMap((post) => [post.author_id, post.deleted_by_id]));
        if (ticket !== this.loading) return;
        clearAlert();
        this.items = page.items;
        this.pages.next = page.next_cursor;
        // Errors stay beside rows that are still listed; the rest are settled.
        for (const id of [...this.rowErrors.keys()]) {
          if (!this.items.some((post) => post.id === id)) this.rowErrors.delete(id);
        }
        this.render();
      } catch (err) {
        if (ticket !== this.loading) return;
        $('trash-status').textContent = 'The trash could not be loaded.';
        failed(err, () => this.load());
      } finally {
        if (ticket === this.loading) table.removeAttribute('aria-busy');
      }
    },

    render() {
      const rows = this.items.map((post) => this.row(post));
      $('trash-rows').replaceChildren(...rows);
      const filtered = Boolean(this.filters.q || this.filters.author_id);
      const empty = this.items.length === 0;
      show($('trash-table').parentElement, !empty);
      show($('trash-empty'), empty);
      show($('trash-empty-clear'), empty && filtered);
      if (empty) {
        $('trash-empty-text').textContent = filtered
          ? 'No deleted posts match these filters.'
          : (this.pages.index > 0
            ? 'No more deleted posts.'
            : 'The trash is empty. Deleted posts wait here until they are restored or purged.');
      }
      const first = this.pages.index * PAGE_SIZE + 1;
      $('trash-status').textContent = empty
        ? ''
        : `Showing ${first}–${first + this.items.length - 1}${this.pages.next ? '' : ' (the last page)'}${filtered ? ', filtered' : ''}.`;
      $('trash-page').textContent = `Page ${this.pages.index + 1}`;
      $('trash-prev').disabled = this.pages.index === 0;
      $('trash-next').disabled = !this.pages.next;
      this.updateSelection();
    },

    row(post) {
      const checkboxId = `select-${post.id}`;
      const errorId = `error-${post.id}`;
      const error = this.rowErrors.get(post.id);
      const checkbox = el('input', {
        type: 'checkbox',
        id: checkboxId,
        'data-id': post.id,
        'aria-label': `Select “${post.title}”`,
        'aria-describedby': error ? errorId : null,
      });
      checkbox.checked = this.selected.has(post.id);
      checkbox.addEventListener('change', () => {
        if (checkbox.checked) this.selected.set(post.id, post);
        else this.selected.delete(post.id);
        this.updateSelection();
      });
      const deletedBy = post.deleted_by_id === null ? 'a removed user' : people.node(post.deleted_by_id);
      let expires;
      if (post.expires_at === null) {
        expires = el('div', { class: 'muted', title: 'The server runs without --trash-retention' }, 'Kept until purged');
      } else {
        const due = new Date(post.expires_at).getTime() <= Date.now();
        expires = el('div', {},
          el('span', { class: 'main' }, due ? 'Due now' : fromNow(post.expires_at)),
          el('span', { class: 'sub' }, timeNode(post.expires_at)));
      }
      const tr = el('tr', {
        'data-id': post.id,
        class: [this.selected.has(post.id) ? 'selected' : '', error ? 'has-error' : ''].join(' ').trim() || null,
      },
      el('td', { class: 'check' }, checkbox),
      el('td', { class: 'post' },
        el('label', { for: checkboxId, class: 'title' }, post.title),
        el('span', { class: 'sub mono' }, `${post.slug} · #${post.id}`),
        error ? el('span', { id: errorId, class: 'row-error', 'data-status': error.status }, error.message) : null),
      el('td', { 'data-label': 'Author' }, el('div', {}, people.node(post.author_id))),
      el('td', { 'data-label': 'Deleted' },
        el('div', {},
          el('span', { class: 'main' }, timeNode(post.deleted_at)),
          el('span', { class: 'sub' }, 'by ', deletedBy))),
      el('td', { 'data-label': 'Expires' }, expires));
      return tr;
    },

    updateSelection() {
      const count = this.selected.size;
      $('selection-count').textContent = count ? `${plural(count, 'post', 'posts')} selected` : 'Nothing selected';
      $('restore-selected').disabled = count === 0;
      $('delete-selected').disabled = count === 0;
      $('clear-selection').disabled = count === 0;
      $('trash-actions').classList.toggle('active', count > 0);
      const onPage = this.items.filter((post) => this.selected.has(post.id)).length;
      const all = $('select-all');
      all.checked = onPage > 0 && onPage === this.items.length;
      all.indeterminate = onPage > 0 && onPage < this.items.length;
      for (const tr of $('trash-rows').children) {
        tr.classList.toggle('selected', this.selected.has(Number(tr.dataset.id)));
      }
    },

    selectPage(checked) {
      for (const post of this.items) {
        if (checked) this.selected.set(post.id, post);
        else this.selected.delete(post.id);
      }
      for (const box of $('trash-rows').querySelectorAll('input[type="checkbox"]')) box.checked = checked;
      this.updateSelection();
    },

    /** Per-item errors of a refused bulk request, beside their rows. */
    showItemErrors(err, ids) {
      this.rowErrors.clear();
      for (const item of err.errors) {
        const id = item.id !== undefined ? item.id : ids[item.index];
        if (id !== undefined) this.rowErrors.set(id, { status: err.status, message: item.message });
      }
      this.render();
    },

    async restore() {
      const posts = [...this.selected.values()];
      const ids = posts.map((post) => post.id);
      if (!ids.length) return;
      const button = $('restore-selected');
      button.disabled = true;
      clearAlert();
      notify('');
      try {
        const answer = await api('POST', '/posts/bulk/restore', { post_ids: ids });
        this.selected.clear();
        this.rowErrors.clear();
        const titles = answer.items.map((post) => `“${post.title}”`).join(', ');
        notify(`Restored ${plural(answer.items.length, 'post', 'posts')}: ${titles}. They are public again.`);
        await this.load();
      } catch (err) {
        if (err instanceof ApiError && err.errors.length) {
          this.showItemErrors(err, ids);
          const what = {
            409: 'a slug is now used by an active post',
            404: 'a post no longer exists',
            400: 'a post is no longer in the trash',
          }[err.status] || 'some posts can not be restored';
          alertError(`Nothing was restored: ${what}. The reason is shown beside each post; unselect those posts, or free their slugs, and try again.`);
          this.focusFirstError();
        } else {
          failed(err);
        }
        this.updateSelection();
      }
    },

    focusFirstError() {
      const first = document.querySelector('#trash-rows tr.has-error input[type="checkbox"]');
      if (first) first.focus();
    },

    async deletePermanently() {
      const posts = [...this.selected.values()];
      if (!posts.length) return;
      const confirmed = await confirmDialog({
        title: `Delete ${plural(posts.length, 'post', 'posts')} permanently?`,
        text: 'They are removed with their comments for good. This can not be undone, and restore will no longer find them.',
        items: posts.map((post) => `${post.title} (#${post.id})`),
        action: `Delete ${plural(posts.length, 'post', 'posts')} permanently`,
      });
      if (!confirmed) {
        $('delete-selected').focus();
        return;
      }
      clearAlert();
      notify('');
      try {
        const answer = await api('DELETE', '/posts/bulk',
          { post_ids: posts.map((post) => post.id), hard_delete: true },
          { Prefer: 'return=representation' });
        this.selected.clear();
        this.rowErrors.clear();
        let message = `Deleted ${plural(answer.deleted.length, 'post', 'posts')} permanently.`;
        if (answer.skipped.length) message += ` ${plural(answer.skipped.length, 'post was', 'posts were')} already gone.`;
        notify(message);
        await this.load();
        $('trash-title').focus();
      } catch (err) {
        failed(err);
      }
    },
  };

  // ---------------------------------------------------------------------------------
  // The confirmation dialog: Cancel has the focus, Escape cancels
  // ---------------------------------------------------------------------------------

  function confirmDialog({ title, text, items, action }) {
    const dialog = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    const shown = items.slice(0, 10).map((item) => el('li', {}, item));
    if (items.length > 10) shown.push(el('li', {}, `and ${items.length - 10} more`));
    $('confirm-list').replaceChildren(...shown);
    show($('confirm-list'), shown.length > 0);
    $('confirm-ok').textContent = action;
    return new Promise((resolve) => {
      const finish = (answer) => {
        $('confirm-ok').removeEventListener('click', onOk);
        $('confirm-cancel').removeEventListener('click', onCancel);
        dialog.removeEventListener('close', onClose);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const onOk = () => finish(true);
      const onCancel = () => finish(false);
      const onClose = () => finish(false);
      $('confirm-ok').addEventListener('click', onOk);
      $('confirm-cancel').addEventListener('click', onCancel);
      dialog.addEventListener('close', onClose);
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ---------------------------------------------------------------------------------
  // Purge
  // ---------------------------------------------------------------------------------

  const DURATION = /^[0-9]+[smhd]$/;

  function purgeAge() {
    const input = $('purge-age');
    const error = $('purge-error');
    const text = input.value.trim();
    input.removeAttribute('aria-invalid');
    show(error, false);
    if (!DURATION.test(text)) {
      input.setAttribute('aria-invalid', 'true');
      error.textContent = 'Write a whole number and a unit, such as 30d, 12h, 15m or 0s.';
      show(error, true);
      input.focus();
      return null;
    }
    return text;
  }

  function purgeFieldError(err) {
    if (err instanceof ApiError && err.status === 422) {
      const input = $('purge-age');
      input.setAttribute('aria-invalid', 'true');
      const first = err.errors[0];
      $('purge-error').textContent = first ? `“${input.value.trim()}” ${first.message}.` : err.message;
      show($('purge-error'), true);
      input.focus();
      return true;
    }
    return false;
  }

  async function countPurge(event) {
    if (event) event.preventDefault();
    const age = purgeAge();
    if (!age) return null;
    clearAlert();
    notify('');
    $('purge-result').textContent = 'Counting…';
    try {
      const answer = await api('POST', '/admin/purge', { older_than: age, dry_run: true });
      $('purge-result').textContent = answer.purged
        ? `${plural(answer.purged, 'post was', 'posts were')} deleted more than ${age} ago and would be purged.`
        : `No post in the trash was deleted more than ${age} ago: nothing to purge.`;
      return answer.purged;
    } catch (err) {
      $('purge-result').textContent = '';
      if (!purgeFieldError(err)) failed(err);
      return null;
    }
  }

  async function purge() {
    const age = purgeAge();
    if (!age) return;
    const count = await countPurge();
    if (count === null) return;
    if (count === 0) {
      $('purge-go').focus();
      return;
    }
    const confirmed = await confirmDialog({
      title: `Purge ${plural(count, 'post', 'posts')}?`,
      text: `Every post deleted more than ${age} ago is removed with its comments for good. This can not be undone.`,
      items: [],
      action: `Purge ${plural(count, 'post', 'posts')}`,
    });
    if (!confirmed) {
      $('purge-go').focus();
      return;
    }
    try {
      const answer = await api('POST', '/admin/purge', { older_than: age });
      $('purge-result').textContent = `Purged ${plural(answer.purged, 'post', 'posts')} deleted more than ${age} ago.`;
      trash.reset();
    } catch (err) {
      if (!purgeFieldError(err)) failed(err);
    }
    $('purge-go').focus();
  }

  // ---------------------------------------------------------------------------------
  // The audit log
  // ---------------------------------------------------------------------------------

  const ACTION_NAMES = {
    'post.create': 'Created a post',
    'post.update': 'Edited a post',
    'post.revert': 'Reverted a post',
    'post.delete': 'Deleted a post',
    'post.delete_permanent': 'Permanently deleted a post',
    'post.restore': 'Restored a post',
    'posts.bulk_create': 'Created posts (bulk)',
    'posts.bulk_update': 'Edited posts (bulk)',
    'posts.bulk_delete': 'Deleted posts (bulk)',
    'posts.bulk_delete_permanent': 'Permanently deleted posts (bulk)',
    'posts.bulk_restore': 'Restored posts (bulk)',
    'posts.filter_delete': 'Deleted posts by a filter',
    'trash.purge': 'Purged the trash',
    'user.role': 'Changed a role',
    'user.delete': 'Removed a user',
    'user.erase': 'Erased a user',
    'token.create': 'Created an API token',
    'token.revoke': 'Revoked an API token',
  };

  /** What an event's `target_ids` are: users for user.* and token.* (the token's owner). */
  function targetsUsers(action) {
    return action.startsWith('user.') || action.startsWith('token.');
  }

  /** Rows the first page holds at most while live events are added above the rest. */
  const LIVE_ROWS_MOST = 200;

  const audit = {
    pages: new Pages(),
    filters: { action: '', actor_id: null },
    loading: 0,
    /** Rows on the page, and how many of them came from the live feed. */
    rows: 0,
    arrived: 0,

    reset() {
      this.pages.reset();
      this.rows = 0;
      this.arrived = 0;
      $('audit-rows').replaceChildren();
    },

    async load() {
      const ticket = ++this.loading;
      live.stop();
      const table = $('audit-table');
      table.setAttribute('aria-busy', 'true');
      $('audit-status').textContent = 'Loading the audit log…';
      try {
        const page = await api('GET', '/admin/audit' + query({
          limit: PAGE_SIZE,
          action: this.filters.action,
          actor_id: this.filters.actor_id,
          cursor: this.pages.cursor,
        }));
        if (ticket !== this.loading) return;
        await people.resolve(page.items.flatMap((event) => this.people(event)));
        // The feed starts after the newest event there is, not only the newest shown: a
        // filtered page's newest may be far back.
        let newest = page.items.length ? page.items[0].id : 0;
        if (this.pages.index === 0 && live.wanted && this.filtered()) {
          const latest = await api('GET', '/admin/audit?limit=1');
          if (latest.items.length) newest = Math.max(newest, latest.items[0].id);
        }
        if (ticket !== this.loading) return;
        clearAlert();
        this.pages.next = page.next_cursor;
        this.render(page.items);
        this.follow(newest);
      } catch (err) {
        if (ticket !== this.loading) return;
        $('audit-status').textContent = 'The audit log could not be loaded.';
        failed(err, () => this.load());
      } finally {
        if (ticket === this.loading) table.removeAttribute('aria-busy');
      }
    },

    filtered() {
      return Boolean(this.filters.action || this.filters.actor_id);
    },

    /** Starts the live feed after `newest` when it should run, or says why it does not. */
    follow(newest) {
      // A load that ends after the operator left the view (or signed out) starts nothing.
      if (!session.token || $('view-audit').hidden) live.stop();
      else if (!live.wanted) live.stop('off', 'Off. Turn it on to see new events as they happen.');
      else if (this.pages.index > 0) live.stop('paused', 'Paused on older pages: new events show on the first page.');
      else live.start(newest, (events) => this.prepend(events));
    },

    /** The user ids an event names: its actor, and its targets when they are users. */
    people(event) {
      const ids = event.actor_id === null ? [] : [event.actor_id];
      return targetsUsers(event.action) ? ids.concat(event.target_ids.slice(0, 6)) : ids;
    },

    matches(event) {
      return (!this.filters.action || event.action === this.filters.action)
        && (!this.filters.actor_id || String(event.actor_id) === this.filters.actor_id);
    },

    render(events) {
      $('audit-rows').replaceChildren(...events.map((event) => this.row(event)));
      this.rows = events.length;
      this.arrived = 0;
      this.summarize();
      $('audit-page').textContent = `Page ${this.pages.index + 1}`;
      $('audit-prev').disabled = this.pages.index === 0;
    },

    summarize() {
      const empty = this.rows === 0;
      show($('audit-table').parentElement, !empty);
      show($('audit-empty'), empty);
      $('audit-empty-text').textContent = this.filtered() ? 'No events match these filters.' : 'Nothing has been recorded yet.';
      let status = empty ? '' : `${plural(this.rows, 'event', 'events')} on this page`;
      if (this.arrived) status += `, ${this.arrived} new since it loaded`;
      $('audit-status').textContent = status && status + '.';
      $('audit-next').disabled = !this.pages.next;
    },

    /** Events from the live feed (oldest first): each goes on top, newest first. */
    async prepend(events) {
      const shown = events.filter((event) => this.matches(event));
      if (!shown.length) return;
      const ticket = this.loading;
      await people.resolve(shown.flatMap((event) => this.people(event)));
      // A page loaded meanwhile has these events already, or should not show them.
      if (ticket !== this.loading) return;
      const body = $('audit-rows');
      for (const event of shown) {
        const tr = this.row(event);
        tr.classList.add('fresh');
        body.prepend(tr);
      }
      this.rows += shown.length;
      this.arrived += shown.length;
      // A page that keeps growing is cut at the bottom; "Older" then starts after the last
      // row kept (the cursor is an event id), so no event falls between the pages.
      while (body.children.length > LIVE_ROWS_MOST) {
        body.lastElementChild.remove();
        this.rows -= 1;
        this.pages.next = body.lastElementChild.dataset.id;
      }
      this.summarize();
    },

    row(event) {
      const many = targetsUsers(event.action)
        ? (event.action.startsWith('token.') ? ['token', 'tokens'] : ['user', 'users'])
        : ['post', 'posts'];
      const more = event.target_ids.length > 6 ? ` and ${event.target_ids.length - 6} more` : '';
      const targets = el('span', { class: 'sub', title: event.target_ids.map((id) => `#${id}`).join(', ') });
      event.target_ids.slice(0, 6).forEach((id, index) => {
        if (index) targets.append(', ');
        if (targetsUsers(event.action)) targets.append(people.node(id));
        else targets.append(el('span', { class: 'mono' }, `#${id}`));
      });
      if (more) targets.append(more);
      if (event.action.startsWith('token.')) targets.prepend('of ');
      const who = event.actor_id === null
        ? el('div', { class: 'muted', title: 'The command line or the retention sweep' }, 'server')
        : el('div', {}, people.node(event.actor_id));
      return el('tr', { 'data-id': event.id },
        el('td', { 'data-label': 'When' }, el('div', {}, timeNode(event.at))),
        el('td', { 'data-label': 'Who' }, who),
        el('td', { 'data-label': 'Action' },
          el('div', {},
            el('span', { class: 'main' }, ACTION_NAMES[event.action] || event.action),
            el('span', { class: 'sub action-code' }, event.action))),
        el('td', { 'data-label': 'Changed' },
          el('div', {},
            el('span', { class: 'main' }, plural(event.count, many[0], many[1])),
            targets)),
        el('td', { 'data-label': 'Detail' }, el('div', {}, event.detail)));
    },
  };

  // ---------------------------------------------------------------------------------
  // The live feed: GET /events read with fetch (an EventSource can not send the token)
  // ---------------------------------------------------------------------------------

  /** Server-Sent Events parsed from text as it arrives: a chunk may end anywhere. */
  class EventStreamParser {
    constructor() {
      this.buffer = '';
      this.afterCR = false;
      this.data = [];
      this.type = '';
      this.id = '';
    }

    /** Takes the next text; returns the events it completed, as { id, type, data }. */
    push(text) {
      if (!text) return [];
      // A line that ended with the last chunk's CR: an LF starting this one is its CRLF.
      if (this.afterCR && text.startsWith('\n')) text = text.slice(1);
      this.afterCR = false;
      this.buffer += text;
      const events = [];
      const lineEnd = /\r\n|\r|\n/g;
      let start = 0;
      let match;
      while ((match = lineEnd.exec(this.buffer)) !== null) {
        this.line(this.buffer.slice(start, match.index), events);
        start = lineEnd.lastIndex;
        this.afterCR = start === this.buffer.length && match[0] === '\r';
      }
      this.buffer = this.buffer.slice(start);
      return events;
    }

    line(line, events) {
      if (line === '') {
        if (this.data.length) events.push({ id: this.id, type: this.type || 'message', data: this.data.join('\n') });
        this.data = [];
        this.type = '';
        return;
      }
      if (line.startsWith(':')) return; // a comment: the server's keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.type = value;
      else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
  }

  /** No byte for this long (keep-alives come every 15 s): the connection is taken as lost. */
  const LIVE_SILENCE_MS = 45000;

  /**
   * One stream at a time. It starts after the newest event on the page (`?since=`) and,
   * when it drops, comes back after a growing pause with `Last-Event-ID` set to the last
   * event it handed on: nothing is missed, and nothing is shown twice.
   */
  const live = {
    /** The switch: whether the operator wants the feed. */
    wanted: true,
    /** Bumped by every start, stop and retry: callbacks of an older one do nothing. */
    generation: 0,
    controller: null,
    timer: null,
    watchdog: null,
    lastId: 0,
    failures: 0,
    onEvents: null,

    say(state, text) {
      const node = $('audit-live-state');
      node.dataset.state = state;
      if (node.textContent !== text) node.textContent = text;
    },

    start(after, onEvents) {
      this.stop();
      this.lastId = after;
      this.onEvents = onEvents;
      this.failures = 0;
      this.connect(true);
    },

    stop(state, text) {
      this.generation += 1;
      if (this.controller) this.controller.abort();
      this.controller = null;
      clearTimeout(this.timer);
      clearTimeout(this.watchdog);
      if (state) this.say(state, text);
    },

    /** Aborts a stream that has said nothing for too long; the retry follows. */
    arm(generation) {
      clearTimeout(this.watchdog);
      this.watchdog = setTimeout(() => {
        if (generation === this.generation && this.controller) this.controller.abort();
      }, LIVE_SILENCE_MS);
    },

    async connect(first) {
      const generation = ++this.generation;
      const current = () => generation === this.generation;
      const controller = new AbortController();
      this.controller = controller;
      if (!this.failures) this.say('connecting', 'Connecting…');
      const headers = { Accept: 'text/event-stream', Authorization: 'Bearer ' + session.token };
      let path = '/events';
      if (first) path += query({ since: this.lastId });
      else headers['Last-Event-ID'] = String(this.lastId);
      let busy = null;
      try {
        const response = await fetch(path, {
          headers, signal: controller.signal, cache: 'no-store', credentials: 'omit',
        });
        if (!current()) return;
        if (!response.ok) {
          let detail = '';
          try { detail = (await response.json()).detail || ''; } catch (_) { /* no body */ }
          if (!current()) return;
          if (response.status === 401) {
            sessionEnded(detail);
            return;
          }
          if (response.status === 503 || response.status === 429) {
            busy = Number(response.headers.get('Retry-After')) || 1;
          } else {
            this.stop('failed', `Off: the server refused the feed (${response.status}). ${detail}`.trim());
            return;
          }
        } else {
          this.failures = 0;
          this.say('live', 'Live: new events appear at the top.');
          await this.read(response, generation);
        }
      } catch (_) {
        // The network, a restart, or the watchdog's abort: try again below.
      }
      if (current()) this.retry(busy);
    },

    async read(response, generation) {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new EventStreamParser();
      this.arm(generation);
      for (;;) {
        const { value, done } = await reader.read();
        if (generation !== this.generation || done) return;
        this.arm(generation);
        const fresh = [];
        for (const event of parser.push(decoder.decode(value, { stream: true }))) {
          const id = Number(event.id);
          if (!/^[0-9]+$/.test(event.id) || id <= this.lastId) continue;
          let data;
          try { data = JSON.parse(event.data); } catch (_) { continue; }
          this.lastId = id;
          fresh.push(data);
        }
        if (fresh.length) {
          try {
            await this.onEvents(fresh);
          } catch (err) {
            if (err instanceof SessionEnded) return;
            throw err;
          }
        }
      }
    },

    /** Waits 1, 2, 4, 8, 15 s (or what Retry-After says), give or take a fifth, then connects. */
    retry(retryAfter) {
      const generation = ++this.generation;
      this.controller = null;
      clearTimeout(this.watchdog);
      this.failures += 1;
      const pause = Math.max(Math.min(15, 2 ** (this.failures - 1)), retryAfter || 0);
      const ms = pause * 1000 * (0.8 + Math.random() * 0.4);
      const seconds = Math.max(1, Math.round(ms / 1000));
      this.say('reconnecting', retryAfter
        ? `The server is busy; trying again in ${plural(seconds, 'second', 'seconds')}…`
        : `Connection lost; reconnecting in ${plural(seconds, 'second', 'seconds')}…`);
      this.timer = setTimeout(() => {
        if (generation === this.generation) this.connect(false);
      }, ms);
    },
  };

  // ---------------------------------------------------------------------------------
  // Users, and erasing one
  // ---------------------------------------------------------------------------------

  const USERNAME_PART = /^[A-Za-z0-9_.-]{1,32}$/;

  const users = {
    pages: new Pages(),
    q: '',
    loading: 0,

    reset() {
      this.pages.reset();
      $('users-rows').replaceChildren();
    },

    async load() {
      const ticket = ++this.loading;
      const table = $('users-table');
      table.setAttribute('aria-busy', 'true');
      $('users-status').textContent = 'Loading the users…';
      try {
        const page = await api('GET', '/admin/users' + query({
          limit: PAGE_SIZE,
          q: this.q,
          cursor: this.pages.cursor,
        }));
        if (ticket !== this.loading) return;
        clearAlert();
        for (const user of page.items) people.learn(user);
        this.pages.next = page.next_cursor;
        this.render(page.items);
      } catch (err) {
        if (ticket !== this.loading) return;
        $('users-status').textContent = 'The users could not be loaded.';
        failed(err, () => this.load());
      } finally {
        if (ticket === this.loading) table.removeAttribute('aria-busy');
      }
    },

    render(items) {
      $('users-rows').replaceChildren(...items.map((user) => this.row(user)));
      const empty = items.length === 0;
      show($('users-table').parentElement, !empty);
      show($('users-empty'), empty);
      $('users-empty-text').textContent = this.q ? `No username contains “${this.q}”.` : 'No more users.';
      const first = this.pages.index * PAGE_SIZE + 1;
      $('users-status').textContent = empty
        ? ''
        : `Showing ${first}–${first + items.length - 1}${this.pages.next ? '' : ' (the last page)'}${this.q ? ', filtered' : ''}.`;
      $('users-page').textContent = `Page ${this.pages.index + 1}`;
      $('users-prev').disabled = this.pages.index === 0;
      $('users-next').disabled = !this.pages.next;
    },

    row(user) {
      const me = Boolean(session.me) && session.me.id === user.id;
      const button = el('button', {
        type: 'button', class: 'danger-quiet', id: `erase-${user.id}`, 'aria-label': `Erase ${user.username}…`,
      }, 'Erase…');
      button.addEventListener('click', () => eraseUser(user, button));
      return el('tr', { 'data-id': user.id },
        el('td', { class: 'user' },
          el('span', { class: 'title' }, user.username, me ? el('span', { class: 'tag' }, 'you') : null),
          el('span', { class: 'sub mono' }, `#${user.id}`)),
        el('td', { 'data-label': 'Role' },
          el('div', {}, user.role === 'admin' ? el('span', { class: 'tag admin' }, 'admin') : 'user')),
        el('td', { 'data-label': 'Posts', class: 'posts' },
          el('div', {},
            el('span', { class: 'main' }, String(user.posts)),
            user.trashed ? el('span', { class: 'sub' }, `and ${user.trashed} in the trash`) : null)),
        el('td', { 'data-label': 'Joined' }, el('div', {}, timeNode(user.created_at))),
        el('td', { class: 'erase' }, button));
    },
  };

  /**
   * The erasure dialog: the dry run's counts first; the Erase button works only once the
   * username is typed exactly. Cancel has the focus until the counts are in, then the
   * name field; Escape cancels (not while the erasure runs); the focus goes back to the
   * row's button, or to the heading when the row is gone.
   */
  async function eraseUser(user, opener) {
    const dialog = $('erase');
    const ok = $('erase-ok');
    const name = $('erase-name');
    const error = $('erase-error');
    const listening = new AbortController();
    const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listening.signal });
    let ready = false;
    let busy = false;
    let erased = false;

    $('erase-title').textContent = `Erase ${user.username}?`;
    $('erase-status').textContent = `Counting what erasing ${user.username} (#${user.id}) would remove…`;
    for (const id of ['erase-counts', 'erase-text', 'erase-confirm-field', 'erase-error']) show($(id), false);
    $('erase-name-label').textContent = `Type ${user.username} to confirm`;
    name.value = '';
    name.removeAttribute('aria-invalid');
    ok.textContent = `Erase ${user.username}`;
    const update = () => { ok.disabled = !ready || busy || name.value !== user.username; };
    update();

    const failure = (prefix, err) => {
      if (err instanceof SessionEnded) {
        if (dialog.open) dialog.close();
        return;
      }
      error.textContent = `${prefix} ${explain(err)}`;
      show(error, true);
    };

    const erase = async () => {
      if (ok.disabled) return;
      busy = true;
      ok.textContent = 'Erasing…';
      update();
      show(error, false);
      try {
        const answer = await api('DELETE', `/admin/users/${user.id}`);
        erased = true;
        people.forget(user.id);
        trash.reset();
        dialog.close();
        notify(`Erased ${user.username} (#${user.id}): ${plural(answer.posts, 'post', 'posts')}, `
          + `${plural(answer.comments, 'comment', 'comments')} and ${plural(answer.revisions, 'revision', 'revisions')}.`);
        await users.load();
      } catch (err) {
        busy = false;
        ok.textContent = `Erase ${user.username}`;
        update();
        failure('Nothing was erased:', err);
      }
    };

    on(name, 'input', update);
    on(name, 'keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        erase();
      }
    });
    on(ok, 'click', erase);
    on($('erase-cancel'), 'click', () => dialog.close());
    on(dialog, 'cancel', (event) => { if (busy) event.preventDefault(); });
    on(dialog, 'close', () => {
      listening.abort();
      if ($('view-users').hidden) return;
      const back = !erased && opener.isConnected ? opener : $('users-title');
      back.focus();
    });

    dialog.showModal();
    $('erase-cancel').focus();
    try {
      const counts = await api('DELETE', `/admin/users/${user.id}?dry_run=true`);
      if (!dialog.open || listening.signal.aborted) return;
      $('erase-status').textContent = `Erasing ${user.username} (#${user.id}) removes, as of now:`;
      $('erase-posts').textContent = String(counts.posts);
      $('erase-posts-label').textContent = `${counts.posts === 1 ? 'post' : 'posts'}, active and in the trash`;
      $('erase-comments').textContent = String(counts.comments);
      $('erase-comments-label').textContent = `${counts.comments === 1 ? 'comment' : 'comments'}: theirs, and every one on their posts`;
      $('erase-revisions').textContent = String(counts.revisions);
      $('erase-revisions-label').textContent = `earlier ${counts.revisions === 1 ? 'version' : 'versions'} of their posts`;
      for (const id of ['erase-counts', 'erase-text', 'erase-confirm-field']) show($(id), true);
      ready = true;
      update();
      if (document.activeElement === $('erase-cancel')) name.focus();
    } catch (err) {
      if (!dialog.open || listening.signal.aborted) return;
      $('erase-status').textContent = '';
      failure(`${user.username} can not be erased:`, err);
    }
  }

  // ---------------------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------------------

  function wire() {
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('denied-again').addEventListener('click', () => {
      $('username').value = '';
      showSignIn('');
    });
    $('alert-retry').addEventListener('click', () => {
      const retry = retryAction;
      clearAlert();
      if (retry) retry();
    });
    window.addEventListener('hashchange', () => {
      if (session.token && session.me) openSection(true);
    });

    $('trash-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      let author;
      try { author = idFilter($('trash-author'), $('trash-author-error')); } catch (_) { return; }
      trash.filters = { q: $('trash-q').value.trim(), author_id: author };
      trash.pages.reset();
      trash.rowErrors.clear();
      trash.load();
    });
    const clearTrashFilters = () => {
      $('trash-q').value = '';
      $('trash-author').value = '';
      $('trash-author').removeAttribute('aria-invalid');
      show($('trash-author-error'), false);
      trash.filters = { q: '', author_id: null };
      trash.pages.reset();
      trash.load();
      $('trash-q').focus();
    };
    $('trash-clear').addEventListener('click', clearTrashFilters);
    $('trash-empty-clear').addEventListener('click', clearTrashFilters);
    $('select-all').addEventListener('change', (event) => trash.selectPage(event.target.checked));
    $('restore-selected').addEventListener('click', () => trash.restore());
    $('delete-selected').addEventListener('click', () => trash.deletePermanently());
    $('clear-selection').addEventListener('click', () => {
      trash.selected.clear();
      trash.selectPage(false);
    });
    $('trash-prev').addEventListener('click', () => { if (trash.pages.back()) trash.load(); });
    $('trash-next').addEventListener('click', () => { if (trash.pages.forward()) trash.load(); });

    $('purge-form').addEventListener('submit', countPurge);
    $('purge-go').addEventListener('click', purge);

    $('audit-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      let actor;
      try { actor = idFilter($('audit-actor'), $('audit-actor-error')); } catch (_) { return; }
      audit.filters = { action: $('audit-action').value, actor_id: actor };
      audit.pages.reset();
      audit.load();
    });
    $('audit-clear').addEventListener('click', () => {
      $('audit-action').value = '';
      $('audit-actor').value = '';
      show($('audit-actor-error'), false);
      audit.filters = { action: '', actor_id: null };
      audit.pages.reset();
      audit.load();
    });
    $('audit-prev').addEventListener('click', () => { if (audit.pages.back()) audit.load(); });
    $('audit-next').addEventListener('click', () => { if (audit.pages.forward()) audit.load(); });
    $('audit-live').addEventListener('change', (event) => {
      live.wanted = event.target.checked;
      if (!live.wanted) {
        audit.follow(0);
        return;
      }
      // On: back to the newest events, then follow from there.
      audit.pages.reset();
      audit.load();
    });

    $('users-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('users-q');
      const error = $('users-q-error');
      const q = input.value.trim();
      input.removeAttribute('aria-invalid');
      show(error, false);
      if (q !== '' && !USERNAME_PART.test(q)) {
        input.setAttribute('aria-invalid', 'true');
        error.textContent = 'Usernames hold only letters, digits, _ . and - (at most 32 of them).';
        show(error, true);
        input.focus();
        return;
      }
      users.q = q;
      users.pages.reset();
      users.load();
    });
    $('users-clear').addEventListener('click', () => {
      $('users-q').value = '';
      $('users-q').removeAttribute('aria-invalid');
      show($('users-q-error'), false);
      users.q = '';
      users.pages.reset();
      users.load();
      $('users-q').focus();
    });
    $('users-prev').addEventListener('click', () => { if (users.pages.back()) users.load(); });
    $('users-next').addEventListener('click', () => { if (users.pages.forward()) users.load(); });
  }

  /** A token kept from earlier in this tab: check it and carry on where the tab was. */
  async function resume() {
    try {
      await afterSignIn(false);
    } catch (err) {
      if (err instanceof SessionEnded) return;
      showView('loading', false);
      failed(err, resume);
    }
  }

  wire();
  session.load();
  if (session.token) resume();
  else showSignIn('');
}());
