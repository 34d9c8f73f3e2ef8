'use strict';
/**
 * The Pomelo peer's only handler, `connector.entryHandler.*` (copied into the app's
 * generated base folder as app/servers/connector/handler/entryHandler.js). `enter`
 * binds the session to the clientId and adds it to channel "all", as the seed's push
 * server did per apikey; `push` (for a Pomelo client that pushes) sends `onMsg`
 * {msg, id} to the channel.
 */
module.exports = function (app) {
  return new Handler(app);
};

function Handler(app) {
  this.app = app;
}

Handler.prototype.enter = function (msg, session, next) {
  const app = this.app;
  const uid = msg && typeof msg.clientId === 'string' ? msg.clientId : null;
  if (!uid) {
    next(null, { code: 500, msg: 'missing "clientId"' });
    return;
  }
  const sid = app.get('serverId');
  const old = app.get('sessionService').getByUid(uid);
  if (old && old.length > 0) app.get('sessionService').kick(uid, 'replaced');
  session.bind(uid, (err) => {
    if (err) {
      next(null, { code: 500, msg: err.message });
      return;
    }
    const channel = app.get('channelService').getChannel('all', true);
    channel.add(uid, sid);
    session.on('closed', () => channel.leave(uid, sid));
    next(null, { code: 200, msg: 'add ok' });
  });
};

Handler.prototype.push = function (msg, session, next) {
  const push = this.app.get('benchPush');
  push(msg && msg.msg, (err, id) => next(null, err ? { code: 500, msg: err.message } : { code: 200, msg: 'push is ok.', id }));
};
