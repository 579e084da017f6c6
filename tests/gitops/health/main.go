// Command health tells what the GitOps tools' own code makes of Plugin objects: the
// Argo CD health check (a Lua script) run by gopher-lua, the interpreter Argo CD
// embeds, under Argo CD's contract, and kstatus (sigs.k8s.io/cli-utils), the library
// behind Flux's `wait: true`.
//
//	health --lua deploy/gitops/argocd-health.lua < objects.json > verdicts.json
//
// stdin: a JSON array of objects. stdout: a JSON array, one verdict per object, in order.
// Argo CD's contract, as its controller applies it to a custom health check from
// argocd-cm: only the base, package and table libraries are open (no string, no io),
// the object is the global `obj`, the script must finish within one second and return
// a table whose `status` is one of Healthy, Progressing, Degraded, Suspended, Missing
// or Unknown; another status becomes Unknown, another return value is an error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Argo    health `json:"argo"`
	Kstatus health `json:"kstatus"`
}

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var argoStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	script := flag.String("lua", "", "the Argo CD health check to run")
	flag.Parse()
	source, err := os.ReadFile(*script)
	if err != nil {
		fail("reading the Lua script: %v", err)
	}
	var objects []map[string]any
	decoder := json.NewDecoder(os.Stdin)
	decoder.UseNumber()
	if err := decoder.Decode(&objects); err != nil {
		fail("reading the objects from stdin: %v", err)
	}
	verdicts := make([]verdict, 0, len(objects))
	for i, object := range objects {
		object = numbersAsInt64(object).(map[string]any)
		argo, err := argoHealth(string(source), object)
		if err != nil {
			fail("object %d: the Lua health check failed: %v", i, err)
		}
		result, err := status.Compute(&unstructured.Unstructured{Object: object})
		if err != nil {
			fail("object %d: kstatus: %v", i, err)
		}
		verdicts = append(verdicts, verdict{
			Argo:    argo,
			Kstatus: health{Status: result.Status.String(), Message: result.Message},
		})
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		fail("writing the verdicts: %v", err)
	}
}

// argoHealth runs the script on one object as Argo CD's controller does.
func argoHealth(script string, object map[string]any) (health, error) {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			return health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(script); err != nil {
		return health{}, err
	}
	returned := state.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	result := health{
		Status:  lua.LVAsString(table.RawGetString("status")),
		Message: lua.LVAsString(table.RawGetString("message")),
	}
	if !argoStatuses[result.Status] {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return result, nil
}

// toLua converts decoded JSON as Argo CD does: maps to tables, lists to arrays,
// numbers to Lua numbers.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		table := state.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]any:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	}
	return lua.LNil
}

// numbersAsInt64 gives whole numbers the int64 type the API machinery gives them
// (kstatus reads generations as int64), others float64.
func numbersAsInt64(value any) any {
	switch v := value.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbersAsInt64(v[i])
		}
		return v
	case map[string]any:
		for key := range v {
			v[key] = numbersAsInt64(v[key])
		}
		return v
	}
	return value
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "health: "+format+"\n", args...)
	os.Exit(1)
}
