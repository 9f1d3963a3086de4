// Reference harness: runs Go's text/template (with missingkey=zero, as Ollama does) over
// the cases in a JSON list on stdin and prints each output or error. go_answers.json beside it
// holds its answers; the tests compare our interpreter with them. Regenerate with a Go
// toolchain: put this file in a module (go mod init h4go) and `go build`.
//
// A case is {"tmpl", "mode": "plain", "data"} (JSON data; integers stay ints) or
// {"tmpl", "mode": "messages", "messages", "tools"}, which builds the values Ollama passes a
// messages-style template: collated messages, tool calls and tools that print as JSON.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}
func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}
func (pt PropertyType) String() string {
	if len(pt) == 0 {
		return ""
	}
	if len(pt) == 1 {
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}

type ToolProperty struct {
	AnyOf       []ToolProperty `json:"anyOf,omitempty"`
	Type        PropertyType   `json:"type,omitempty"`
	Items       any            `json:"items,omitempty"`
	Description string         `json:"description,omitempty"`
	Enum        []any          `json:"enum,omitempty"`
	Required    []string       `json:"required,omitempty"`
}

type templateProperties map[string]ToolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(t)
	return string(b)
}

type templateArgs map[string]any

func (t templateArgs) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(t)
	return string(b)
}

type Params struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties templateProperties `json:"properties"`
}
type Func struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Parameters  Params `json:"parameters"`
}
type Tool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function Func   `json:"function"`
}

func (t Tool) String() string { b, _ := json.Marshal(t); return string(b) }

type Tools []Tool

func (t Tools) String() string { b, _ := json.Marshal(t); return string(b) }

type TCF struct {
	Index     int
	Name      string
	Arguments templateArgs
}
type TC struct {
	ID       string
	Function TCF
}
type Msg struct {
	Role       string
	Content    string
	Thinking   string
	Images     []string
	ToolCalls  []TC
	ToolName   string
	ToolCallID string
}

type inMsg struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string `json:"thinking"`
	ToolName  string `json:"tool_name"`
	ToolCalls []struct {
		ID       string `json:"id"`
		Function struct {
			Index     int            `json:"index"`
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

type Case struct {
	Tmpl     string          `json:"tmpl"`
	Mode     string          `json:"mode"`
	Data     json.RawMessage `json:"data"`
	Messages []inMsg         `json:"messages"`
	Tools    Tools           `json:"tools"`
}

func fix(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			f, _ := x.Float64()
			return f
		}
		i, _ := x.Int64()
		return int(i)
	case map[string]any:
		for k, e := range x {
			x[k] = fix(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fix(e)
		}
	}
	return v
}

var funcs = template.FuncMap{
	"json":             func(v any) string { b, _ := json.Marshal(v); return string(b) },
	"currentDate":      func(args ...string) string { return "DATE" },
	"toTypeScriptType": func(v any) string { return "any" },
}

func main() {
	var cases []Case
	dec := json.NewDecoder(os.Stdin)
	if err := dec.Decode(&cases); err != nil {
		panic(err)
	}
	var out []map[string]string
	for _, c := range cases {
		res := map[string]string{}
		t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(c.Tmpl)
		if err != nil {
			res["err"] = err.Error()
			out = append(out, res)
			continue
		}
		var data any
		if c.Mode == "messages" {
			var system []string
			var msgs []*Msg
			for _, m := range c.Messages {
				if m.Role == "system" {
					system = append(system, m.Content)
				}
				if len(msgs) > 0 && msgs[len(msgs)-1].Role == m.Role && m.Role != "tool" {
					msgs[len(msgs)-1].Content += "\n\n" + m.Content
					continue
				}
				mm := &Msg{Role: m.Role, Content: m.Content, Thinking: m.Thinking, ToolName: m.ToolName}
				for _, tc := range m.ToolCalls {
					mm.ToolCalls = append(mm.ToolCalls, TC{ID: tc.ID, Function: TCF{Index: tc.Function.Index, Name: tc.Function.Name, Arguments: templateArgs(tc.Function.Arguments)}})
				}
				msgs = append(msgs, mm)
			}
			data = map[string]any{"System": strings.Join(system, "\n\n"), "Messages": msgs, "Tools": c.Tools, "Response": "", "Think": false, "ThinkLevel": "", "IsThinkSet": false}
		} else if len(c.Data) > 0 {
			d := json.NewDecoder(bytes.NewReader(c.Data))
			d.UseNumber()
			var v any
			d.Decode(&v)
			data = fix(v)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			res["err"] = err.Error()
		}
		res["out"] = b.String()
		out = append(out, res)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
