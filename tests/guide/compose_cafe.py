# Combining person and background
files = [
    ('images', open('person.jpg', 'rb')),
    ('images', open('cafe_interior.jpg', 'rb'))
]
data = {
    'prompt': '''Place the person from the first image into the café setting 
    from the second image. Make them appear to be sitting at one of the tables, 
    with natural lighting that matches the café's ambiance. Ensure the scale 
    and perspective look realistic, and blend the lighting so it appears they 
    were originally photographed in that location.''',
    'composition_style': 'blend'
}

response = requests.post('/compose-images', files=files, data=data)
# --- end of the guide's sample; checks follow ---
assert response.status_code == 200, response.text
assert response.json()['images']
