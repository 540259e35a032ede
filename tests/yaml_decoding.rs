//! YAML resource dumps decode to the values YAML gives them, whichever decoder reads them:
//! the direct one for what `kubectl` and `calicoctl` print, serde_yaml for the rest.

use std::path::Path;

use calisnap::parse::yaml::{PathSeg, objects};
use serde_json::json;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/yaml")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn kubectl_output_with_block_scalars_and_quoted_values_decodes_exactly() {
    let o = objects(&fixture("kubectl-pods-last-applied.yaml"));
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(o.objects.len(), 1);
    let pod = &o.objects[0];
    assert_eq!(pod.line, 4);
    let v = &pod.value;
    assert_eq!(
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"web\"},\"name\":\"web-0\",\"namespace\":\"shop\"}}\n"
    );
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "web", "tier": "1", "version": "2.0"})
    );
    let c = &v["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["--port=8080", "-v"]));
    assert_eq!(c["command"], json!([]));
    assert_eq!(c["resources"], json!({}));
    assert_eq!(
        c["env"],
        json!([
            {"name": "GREETING", "value": "it's \"quoted\""},
            {"name": "EMPTY", "value": ""},
            {"name": "MULTI", "value": "line one\nline two"}
        ])
    );
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(v["spec"]["tolerations"][0]["tolerationSeconds"], 300);
    assert_eq!(v["status"]["podIPs"], json!([{"ip": "10.244.1.5"}]));
}

#[test]
fn anchors_tags_merges_and_folded_scalars_still_decode() {
    let o = objects(&fixture("hand-written-anchors-and-folds.yaml"));
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(o.objects.len(), 2);
    let gnp = &o.objects[0];
    assert_eq!(gnp.line, 4);
    let v = &gnp.value;
    assert_eq!(
        v["metadata"],
        json!({"name": "allow-dns", "labels": {"owner": "42"}})
    );
    assert_eq!(v["spec"]["types"], json!(["Ingress", "Egress"]));
    assert_eq!(
        v["spec"]["egress"][1]["destination"],
        json!({"ports": [53]})
    );
    assert_eq!(
        v["spec"]["ingress"][0]["source"]["selector"],
        "role == 'monitoring' && env == 'prod'"
    );
    let egress_1 = [
        PathSeg::Key("spec".into()),
        PathSeg::Key("egress".into()),
        PathSeg::Index(1),
    ];
    assert_eq!(gnp.line_of(&egress_1), Some(18));
    assert_eq!(
        o.objects[1].value["metadata"],
        json!({"namespace": "shop", "name": "merged"})
    );
}
