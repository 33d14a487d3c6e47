// Command argo-condition evaluates an Argo Rollouts analysis condition
// (a metric's successCondition or failureCondition) against a Prometheus
// result, the way the Argo Rollouts controller does: the expression
// language is expr-lang/expr, the version Argo Rollouts v1.9 builds with,
// and the environment holds what the controller's evaluator gives
// (`result`, `asInt`, `asFloat`, `isNaN`, `isInf`, `isNil`, `default`),
// including its refusal to index into an empty result. The Prometheus
// provider hands a vector to the condition as a list of float64.
//
// `cargo xtask canary` uses it on the conditions of the chart's
// AnalysisTemplate.
//
// Usage: argo-condition CONDITION RESULT
//
// RESULT is a JSON list of numbers; "NaN", "+Inf" and "-Inf" may be given
// as strings. Prints true or false; exits 2 when the condition cannot be
// evaluated (which Argo Rollouts counts as a measurement error).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"

	"github.com/expr-lang/expr"
)

// Argo Rollouts refuses `result[...]` on an empty result, guarded or not.
var indexesResult = regexp.MustCompile(`\bresult\s*\[`)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argo-condition CONDITION RESULT-AS-JSON-LIST")
		os.Exit(2)
	}
	result, err := parseResult(os.Args[2])
	if err == nil {
		var ok bool
		ok, err = evaluate(os.Args[1], result)
		if err == nil {
			fmt.Println(ok)
			return
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

func parseResult(text string) ([]float64, error) {
	var raw []any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("RESULT is not a JSON list: %w", err)
	}
	values := make([]float64, 0, len(raw))
	for _, item := range raw {
		switch v := item.(type) {
		case float64:
			values = append(values, v)
		case string:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("RESULT item %q is not a number", v)
			}
			values = append(values, f)
		default:
			return nil, fmt.Errorf("RESULT item %v is not a number", item)
		}
	}
	return values, nil
}

func evaluate(condition string, result []float64) (bool, error) {
	if indexesResult.MatchString(condition) && len(result) == 0 {
		return false, errors.New("metric result is empty, and the condition indexes into result")
	}
	env := map[string]any{
		"result":  result,
		"asInt":   func(in any) int64 { return int64(toFloat(in)) },
		"asFloat": toFloat,
		"isNaN":   math.IsNaN,
		"isInf":   func(f float64) bool { return math.IsInf(f, 0) },
		"isNil":   func(any) bool { return result == nil },
		"default": func(_ any, fallback any) any {
			if result == nil {
				return fallback
			}
			return result
		},
	}
	program, err := expr.Compile(condition, expr.Env(env))
	if err != nil {
		return false, err
	}
	output, err := expr.Run(program, env)
	if err != nil {
		return false, err
	}
	ok, isBool := output.(bool)
	if !isBool {
		return false, fmt.Errorf("expected bool, but got %T", output)
	}
	return ok, nil
}

func toFloat(in any) float64 {
	switch v := in.(type) {
	case float64:
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			panic(err)
		}
		return f
	}
	panic(fmt.Sprintf("not a number: %v", in))
}
