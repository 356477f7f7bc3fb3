"""The trip: the state that trip_service and driver_service share.

`document` is the RedisJSON trip document (its fields, the new document, the
trip object rendered from it); `statemachine` the table of transitions whose
sources and targets every script that changes a trip receives. The Lua
helpers those scripts share are `common/lua/trips.lua`.
"""
