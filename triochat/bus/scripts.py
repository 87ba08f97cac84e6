"""The Lua scripts a node runs in Redis (or Valkey): each is one atomic step.

Keys, all under ``triochat:`` (one Redis database per chat, not a Redis Cluster):

==========================  ===========================================================
``room:ROOM``               stream of ROOM's chat lines; entry id ``N-0`` for line id N
``seq:ROOM``                the last line id handed out in ROOM
``log``                     stream of everything else (presence, renames, private
                            messages, kicks, rooms, topics, nodes gone), ``MAXLEN ~``
``changes``                 stream of account, operator, ban and mute changes; never
                            trimmed: a new node reads it all
``name:KEY``                the token (``NODE:CONN``) holding the name with key KEY
``node:NODE``               NODE's heartbeat: exists while NODE is alive (``PX`` expiry)
``nodes``                   set of nodes that announced themselves
``members:NODE``            hash CONN -> {n: name, k: key, r: rooms} of NODE's members
``rooms``, ``topics``       set of room names; hash ROOM -> the last topic operation
``done``                    hash NODE -> the last batch number it published (retries)
``epoch``                   a random token made when the data is new (loss detection)
==========================  ===========================================================

A name held by a node whose heartbeat has expired is free: names expire with their
node, so a crashed node's names come back within the heartbeat's expiry.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BEAT", "BYE", "PREFIX", "PUBLISH", "REAP", "SNAPSHOT"]

PREFIX: Final = "triochat:"

# Shared by the scripts that free a node's names (REAP, BYE): KEYS none, ARGV[1] the
# node, ARGV[2] the log's MAXLEN, ARGV[3] the reason.
_FORGET_NODE: Final = """
local P = 'triochat:'
local function forget(n, loglen, why)
  local m = redis.call('HGETALL', P .. 'members:' .. n)
  for i = 2, #m, 2 do
    local e = cjson.decode(m[i])
    local key = P .. 'name:' .. e.k
    if redis.call('GET', key) == n .. ':' .. m[i - 1] then redis.call('DEL', key) end
  end
  redis.call('DEL', P .. 'members:' .. n, P .. 'node:' .. n)
  redis.call('SREM', P .. 'nodes', n)
  local entry = cjson.encode({o = 'gone', node = n, why = why})
  redis.call('XADD', P .. 'log', 'MAXLEN', '~', loglen, '*', 'e', entry)
end
"""

# ARGV: node, batch number, JSON array of operations (each an object as
# triochat.core.cluster.to_wire writes it, or a chat line as an array: see below), room
# MAXLEN, log MAXLEN, and
# optionally the batch's tag: a line's entry then gets a field ``u``, the tag followed
# by the line's index (the node reads its own lines back by it, undecoded).
# Returns a JSON array of [index, what] for the operations refused (1-based).
PUBLISH: Final = """
local P = 'triochat:'
local node, seq = ARGV[1], tonumber(ARGV[2])
local done = tonumber(redis.call('HGET', P .. 'done', node) or '-1')
if seq <= done then return '[]' end  -- a retry of a batch that went through
redis.call('HSET', P .. 'done', node, seq)
local ops = cjson.decode(ARGV[3])
local roomlen, loglen, tag = ARGV[4], ARGV[5], ARGV[6]
local members = P .. 'members:' .. node
local refused = {}

local function claim(k, t)
  local key = P .. 'name:' .. k
  local owner = redis.call('GET', key)
  if owner and owner ~= t then
    local other = string.match(owner, '^([^:]+):')
    if other ~= node and redis.call('EXISTS', P .. 'node:' .. other) == 1 then
      return false
    end
  end
  redis.call('SET', key, t)
  return true
end
local function owns(k, t) return redis.call('GET', P .. 'name:' .. k) == t end
local function emit(op)
  op.node = node
  redis.call('XADD', P .. 'log', 'MAXLEN', '~', loglen, '*', 'e', cjson.encode(op))
end
local function member(c)
  local raw = redis.call('HGET', members, c)
  if raw then return cjson.decode(raw) end
  return {r = {}}
end
local function save(c, m)
  if next(m.r) == nil then m.r = nil end  -- cjson would write {} for an empty array
  redis.call('HSET', members, c, cjson.encode(m))
end

for i, op in ipairs(ops) do
  if op.o == nil then
    -- A chat line as [conn, name, key, room, kind, text, ts, floor] (cheaper for the
    -- node to write than an object); its entry is the object to_wire writes.
    op = {o = 'line', c = op[1], n = op[2], k = op[3], room = op[4], kind = op[5],
          t = op[6], ts = op[7], f = op[8]}
  end
  local o = op.o
  local t = node .. ':' .. tostring(op.c)
  if o == 'line' then
    if owns(op.k, t) then
      local sk = P .. 'seq:' .. op.room
      local last = tonumber(redis.call('GET', sk) or '0')
      if op.f > last then last = op.f end
      last = last + 1
      redis.call('SET', sk, last)
      op.node = node
      op.f = nil
      local rk, id = P .. 'room:' .. op.room, string.format('%d-0', last)
      if tag then
        redis.call('XADD', rk, 'MAXLEN', '~', roomlen, id, 'e', cjson.encode(op), 'u', tag .. i)
      else
        redis.call('XADD', rk, 'MAXLEN', '~', roomlen, id, 'e', cjson.encode(op))
      end
    else
      table.insert(refused, {i, 'line'})
    end
  elseif o == 'arrive' then
    if claim(op.k, t) then
      save(op.c, {n = op.n, k = op.k, r = op.r})
      emit(op)
    else
      table.insert(refused, {i, 'name'})
    end
  elseif o == 'rename' then
    if claim(op.k, t) then
      if op.ok ~= op.k and owns(op.ok, t) then redis.call('DEL', P .. 'name:' .. op.ok) end
      local m = member(op.c)
      m.n, m.k = op.n, op.k
      save(op.c, m)
      emit(op)
    else
      table.insert(refused, {i, 'name'})
    end
  elseif o == 'leave' then
    if owns(op.k, t) then redis.call('DEL', P .. 'name:' .. op.k) end
    redis.call('HDEL', members, op.c)
    emit(op)
  elseif o == 'enter' or o == 'exit' then
    if owns(op.k, t) then
      local m = member(op.c)
      local rooms = {}
      for _, r in ipairs(m.r or {}) do
        if r ~= op.room then table.insert(rooms, r) end
      end
      if o == 'enter' then table.insert(rooms, op.room) end
      m.r = rooms
      save(op.c, m)
      emit(op)
    end
  elseif o == 'private' then
    if owns(op.k, t) then emit(op) else table.insert(refused, {i, 'line'}) end
  elseif o == 'room' then
    if redis.call('SADD', P .. 'rooms', op.room) == 1 then emit(op) end
  elseif o == 'droproom' then
    -- seq: stays, so a room made again goes on from its ids (nodes read past them)
    redis.call('SREM', P .. 'rooms', op.room)
    redis.call('HDEL', P .. 'topics', op.room)
    redis.call('DEL', P .. 'room:' .. op.room)
    emit(op)
  elseif o == 'topic' then
    redis.call('HSET', P .. 'topics', op.room, cjson.encode(op))
    emit(op)
  elseif o == 'kick' then
    emit(op)
  elseif o == 'change' then
    op.node = node
    redis.call('XADD', P .. 'changes', '*', 'e', cjson.encode(op))
  end
end
return cjson.encode(refused)
"""

# ARGV: node, expiry in ms. Returns 1 if the node was known alive before, else 0 (it is
# new, or the others took it for dead and forgot it: it must announce its members).
BEAT: Final = """
local P = 'triochat:'
local was = redis.call('SISMEMBER', P .. 'nodes', ARGV[1])
redis.call('SET', P .. 'node:' .. ARGV[1], '1', 'PX', ARGV[2])
redis.call('SADD', P .. 'nodes', ARGV[1])
return was
"""

# ARGV: log MAXLEN. Forgets every node whose heartbeat expired; returns the live ones.
REAP: Final = (
    _FORGET_NODE
    + """
local live = {}
for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if redis.call('EXISTS', P .. 'node:' .. n) == 0 then
    forget(n, ARGV[1], 'server lost')
  else
    table.insert(live, n)
  end
end
return live
"""
)

# ARGV: node, log MAXLEN. A node stopping: its names are free at once.
BYE: Final = (
    _FORGET_NODE
    + """
forget(ARGV[1], ARGV[2], 'server stopped')
return 1
"""
)

# No arguments. What a starting node must know, read atomically with the log's
# position: live nodes' members, rooms and topics.
SNAPSHOT: Final = """
local P = 'triochat:'
local last = redis.call('XREVRANGE', P .. 'log', '+', '-', 'COUNT', 1)
local position = '0-0'
if #last > 0 then position = last[1][1] end
local nodes = {}
for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if redis.call('EXISTS', P .. 'node:' .. n) == 1 then
    table.insert(nodes, {n, redis.call('HGETALL', P .. 'members:' .. n)})
  end
end
return cjson.encode({
  position = position,
  nodes = nodes,
  rooms = redis.call('SMEMBERS', P .. 'rooms'),
  topics = redis.call('HGETALL', P .. 'topics'),
})
"""
