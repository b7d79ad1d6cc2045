-- wrk script: registers products through the gateway (POST /product), as the anonymous
-- seller of a dev-mode mesh (script/server). Used to fill a catalogue before reserve.lua.
wrk.method = "POST"
wrk.path = "/product"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"productName":"Item","productStatus":"01"}'
