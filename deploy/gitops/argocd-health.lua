-- Argo CD health check for plugins.chat.dev/Plugin (docs/helm.md, "GitOps").
-- Healthy: Ready at the Plugin's current generation. Suspended: paused (scaled to zero).
-- Degraded: the operator found a problem (Degraded=True; its message says which).
-- Progressing: anything else, including a status the operator has not yet written for
-- the current generation. Uses no library beyond what Argo CD opens for custom checks.
local hs = {status = "Progressing", message = "waiting for the operator to observe this generation"}
if obj.status == nil or obj.status.conditions == nil
   or obj.status.observedGeneration ~= obj.metadata.generation then
  return hs
end
local ready = nil
local degraded = nil
for _, c in ipairs(obj.status.conditions) do
  if c.observedGeneration == nil or c.observedGeneration == obj.metadata.generation then
    if c.type == "Ready" then ready = c end
    if c.type == "Degraded" then degraded = c end
  end
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. degraded.message
elseif ready ~= nil and ready.status == "True" and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = ready.message
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
elseif ready ~= nil then
  hs.message = ready.reason .. ": " .. ready.message
end
return hs
