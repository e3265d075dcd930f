# Recipe tutorial
data = {
    "description": """A complete visual guide for making chocolate chip cookies 
    from scratch. Start with gathering ingredients, then mixing the dough, 
    shaping the cookies, baking them in the oven, and finally showing the 
    delicious finished cookies. Each step should be clearly photographed with 
    professional food photography lighting and styling.""",
    "num_images": 6,
    "content_type": "recipe",
    "style": "clean professional food photography, bright natural lighting, modern kitchen setting"
}

response = requests.post('/story/generate', json=data)
# --- end of the guide's sample; checks follow ---
assert response.status_code == 200, response.text
assert [s['index'] for s in response.json()['steps']] == [1, 2, 3, 4, 5, 6]
